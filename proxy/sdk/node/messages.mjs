// messages.mjs asks the proxy for a message through the @anthropic-ai/sdk package's
// messages.create, streamed with --stream (iterating the raw events), or through its
// messages.stream() helper with --mode helper, and prints what it received as an
// AgentRecord (see lib.mjs). --base-url is the proxy's root, without /v1: the SDK
// adds it. With the helper, final holds the SDK's finalMessage().
import Anthropic from '@anthropic-ai/sdk';
import { AgentRecord, main } from './lib.mjs';

main(async (o) => {
  const anthropic = new Anthropic({ baseURL: o['base-url'], apiKey: o['api-key'], maxRetries: 0, timeout: 60_000 });
  const params = { model: o.model, max_tokens: 4096, messages: [{ role: 'user', content: o.prompt }] };
  const rec = new AgentRecord();
  if (!o.stream && o.mode !== 'helper') {
    const msg = await anthropic.messages.create(params);
    rec.raw.push(msg);
    fromMessage(rec, msg);
    return rec.result();
  }
  const helper = o.mode === 'helper';
  const stream = helper ? anthropic.messages.stream(params) : await anthropic.messages.create({ ...params, stream: true });
  for await (const ev of stream) {
    rec.raw.push(ev);
    rec.events.push(ev.type);
    switch (ev.type) {
      case 'content_block_start': {
        const b = ev.content_block;
        if (b?.type === 'text') rec.text += b.text ?? '';
        if (b?.type === 'thinking') rec.reasoning += b.thinking ?? '';
        if (b?.type === 'tool_use') rec.call(ev.index, b.name, false);
        break;
      }
      case 'content_block_delta': {
        const d = ev.delta;
        if (d?.type === 'text_delta') rec.text += d.text;
        if (d?.type === 'thinking_delta') rec.reasoning += d.thinking;
        if (d?.type === 'input_json_delta') rec.call(ev.index, undefined, false).arguments += d.partial_json;
        break;
      }
      case 'message_delta':
        if (ev.delta?.stop_reason != null) rec.stop_reason = ev.delta.stop_reason;
        if (ev.copyleft_matches !== undefined) rec.copyleft_matches = ev.copyleft_matches;
        break;
    }
  }
  if (helper) {
    const f = new AgentRecord();
    fromMessage(f, await stream.finalMessage());
    rec.final = { text: f.text, reasoning: f.reasoning, tool_calls: f.tool_calls, stop_reason: f.stop_reason };
  }
  return rec.result();
});

// fromMessage reads a whole message into rec.
function fromMessage(rec, msg) {
  rec.stop_reason = msg.stop_reason;
  if (msg.copyleft_matches !== undefined) rec.copyleft_matches = msg.copyleft_matches;
  for (const b of msg.content ?? []) {
    if (b.type === 'text') rec.text += b.text;
    if (b.type === 'thinking') rec.reasoning += b.thinking;
    if (b.type === 'tool_use') rec.tool_calls.push({ name: b.name, arguments: JSON.stringify(b.input) });
  }
}
