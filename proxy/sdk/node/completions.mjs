// completions.mjs asks the proxy for a legacy completion through the openai
// package's completions.create, streamed with --stream, and prints what it received
// (see lib.mjs).
import { client, main, Recorder } from './lib.mjs';

main(async (o) => {
  const openai = client(o);
  const params = { model: o.model, n: o.n, prompt: o.prompt };
  const rec = new Recorder();
  if (o.stream) {
    const stream = await openai.completions.create({ ...params, stream: true });
    for await (const chunk of stream) rec.add(chunk.choices, (c) => c.text);
  } else {
    const res = await openai.completions.create(params);
    rec.add(res.choices, (c) => c.text);
  }
  return rec.result();
});
