// responses.mjs asks the proxy for a response through the openai package's
// responses.create, streamed with --stream (iterating the events), and prints what
// it received as an AgentRecord (see lib.mjs). Streamed, the record's fields come
// from the events' deltas, final holds what the last event's response says, and
// annotation_events the annotations the events announced; annotations are those of
// the response object's output_text parts.
import { AgentRecord, client, main } from './lib.mjs';

main(async (o) => {
  const openai = client(o);
  const params = { model: o.model, input: o.prompt };
  const rec = new AgentRecord();
  if (!o.stream) {
    const res = await openai.responses.create(params);
    rec.raw.push(res);
    fromResponse(rec, res);
    rec.output_text = res.output_text; // the SDK's own reading of the output
    return rec.result();
  }
  const stream = await openai.responses.create({ ...params, stream: true });
  rec.annotation_events = [];
  let final = null;
  for await (const ev of stream) {
    rec.raw.push(ev);
    rec.events.push(ev.type);
    rec.sequence_numbers.push(ev.sequence_number);
    switch (ev.type) {
      case 'response.output_text.delta':
        rec.text += ev.delta;
        break;
      case 'response.reasoning_text.delta':
      case 'response.reasoning_summary_text.delta':
        rec.reasoning += ev.delta;
        break;
      case 'response.output_item.added':
        if (ev.item?.type === 'function_call') rec.call(ev.item.id, ev.item.name, false);
        if (ev.item?.type === 'custom_tool_call') rec.call(ev.item.id, ev.item.name, true);
        break;
      case 'response.function_call_arguments.delta':
        rec.call(ev.item_id, undefined, false).arguments += ev.delta;
        break;
      case 'response.custom_tool_call_input.delta':
        rec.call(ev.item_id, undefined, true).input += ev.delta;
        break;
      case 'response.output_text.annotation.added':
        rec.annotation_events.push(ev.annotation);
        break;
      case 'response.completed':
      case 'response.incomplete':
      case 'response.failed':
        final = ev.response;
        break;
    }
  }
  if (final) {
    const f = new AgentRecord();
    fromResponse(f, final);
    rec.status = f.status;
    rec.incomplete_reason = f.incomplete_reason;
    rec.copyleft_matches = f.copyleft_matches;
    rec.annotations.push(...f.annotations);
    rec.final = { text: f.text, reasoning: f.reasoning, tool_calls: f.tool_calls, custom_tool_calls: f.custom_tool_calls };
  }
  return rec.result();
});

// fromResponse reads a response object into rec.
function fromResponse(rec, res) {
  rec.status = res.status;
  rec.incomplete_reason = res.incomplete_details?.reason ?? null;
  if (res.copyleft_matches !== undefined) rec.copyleft_matches = res.copyleft_matches;
  for (const item of res.output ?? []) {
    switch (item.type) {
      case 'message':
        for (const part of item.content ?? []) {
          if (part.type !== 'output_text') continue;
          rec.text += part.text;
          rec.annotations.push(...(part.annotations ?? []));
        }
        break;
      case 'reasoning':
        for (const part of item.content ?? []) rec.reasoning += part.text ?? '';
        for (const part of item.summary ?? []) rec.reasoning += part.text ?? '';
        break;
      case 'function_call':
        rec.tool_calls.push({ name: item.name, arguments: item.arguments });
        break;
      case 'custom_tool_call':
        rec.custom_tool_calls.push({ name: item.name, input: item.input });
        break;
    }
  }
}
