// ollama.mjs asks the proxy for an answer through the ollama package's chat, or its
// generate with --mode generate, streamed with --stream, and prints what it received
// as an AgentRecord (see lib.mjs). --base-url is the proxy's root: the client adds
// /api/chat or /api/generate.
import { Ollama } from 'ollama';
import { AgentRecord, main } from './lib.mjs';

main(async (o) => {
  const ollama = new Ollama({ host: o['base-url'] });
  const generate = o.mode === 'generate';
  const params = generate ? { model: o.model, prompt: o.prompt } : { model: o.model, messages: [{ role: 'user', content: o.prompt }] };
  const rec = new AgentRecord();
  rec.done = false;
  const add = (part) => {
    rec.raw.push(part);
    rec.events.push(part.done ? 'done' : 'chunk');
    if (generate) {
      rec.text += part.response ?? '';
      rec.reasoning += part.thinking ?? '';
    } else {
      rec.text += part.message?.content ?? '';
      rec.reasoning += part.message?.thinking ?? '';
      for (const tc of part.message?.tool_calls ?? []) {
        rec.tool_calls.push({ name: tc.function?.name, arguments: JSON.stringify(tc.function?.arguments ?? {}) });
      }
    }
    if (part.done) {
      rec.done = true;
      rec.done_reason = part.done_reason;
      if (part.copyleft_matches !== undefined) rec.copyleft_matches = part.copyleft_matches;
    }
  };
  const call = (p) => (generate ? ollama.generate(p) : ollama.chat(p));
  if (o.stream) {
    for await (const part of await call({ ...params, stream: true })) add(part);
  } else {
    add(await call(params));
  }
  return rec.result();
});
