// post.mjs POSTs {"model": ..., "input": --prompt} to the path --mode (e.g.
// /realtime) under the API root with the openai package's generic client.post, and
// prints the answer as {"body": ...}, or the error the client threw.
import { client, main } from './lib.mjs';

main(async (o) => {
  const openai = client(o);
  const body = await openai.post(o.mode, { body: { model: o.model, input: o.prompt } });
  return { body };
});
