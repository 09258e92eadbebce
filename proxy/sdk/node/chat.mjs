// chat.mjs asks the proxy for a chat completion through the openai package's
// chat.completions.create, streamed with --stream, and prints what it received
// (see lib.mjs).
import { client, main, Recorder } from './lib.mjs';

main(async (o) => {
  const openai = client(o);
  const params = { model: o.model, n: o.n, messages: [{ role: 'user', content: o.prompt }] };
  const rec = new Recorder();
  if (o.stream) {
    const stream = await openai.chat.completions.create({ ...params, stream: true });
    for await (const chunk of stream) rec.add(chunk.choices, (c) => c.delta?.content);
  } else {
    const res = await openai.chat.completions.create(params);
    rec.add(res.choices, (c) => c.message?.content);
  }
  return rec.result();
});
