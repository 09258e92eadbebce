// What the scripts share: their command line, the openai client, the record of what
// the client received, printed as one JSON object for the Go tests (proxy/sdk) to
// check, and (AgentRecord) the record of responses.mjs, messages.mjs and ollama.mjs.
import { parseArgs } from 'node:util';
import OpenAI from 'openai';

// options reads the command line:
//   --base-url URL   the proxy's API root, e.g. http://127.0.0.1:8080/v1 (required);
//                    the proxy's root, without /v1, for messages.mjs and ollama.mjs
//   --api-key KEY    default "sk-test"
//   --model NAME     default "test-model"
//   --n N            choices to ask for, default 1
//   --stream         stream the completion
//   --prompt TEXT    the user message (chat) or the prompt (legacy)
//   --mode NAME      what else a script is to do: see each script
export function options() {
  const { values } = parseArgs({
    options: {
      'base-url': { type: 'string' },
      'api-key': { type: 'string', default: 'sk-test' },
      model: { type: 'string', default: 'test-model' },
      n: { type: 'string', default: '1' },
      stream: { type: 'boolean', default: false },
      prompt: { type: 'string', default: 'hello' },
      mode: { type: 'string', default: '' },
    },
    strict: true,
  });
  if (!values['base-url']) throw new Error('--base-url is required');
  return { ...values, n: Number(values.n) };
}

// client returns the official client, pointed at the proxy. It never retries, so a
// failure the proxy causes is seen as it is.
export function client(o) {
  return new OpenAI({ baseURL: o['base-url'], apiKey: o['api-key'], maxRetries: 0, timeout: 60_000 });
}

// A Recorder reassembles each choice from the choice objects of chunks (or of a
// whole response): its text, its finish_reason, how many times one was sent, and
// the citation fields the proxy adds, as last seen.
export class Recorder {
  constructor() {
    this.chunks = 0;
    this.byIndex = new Map();
  }

  // add takes the choices of one chunk or response; textOf picks a choice's text.
  add(choices, textOf) {
    this.chunks++;
    for (const c of choices ?? []) {
      let r = this.byIndex.get(c.index);
      if (!r) {
        r = { index: c.index, content: '', finish_reason: null, finishes: 0 };
        this.byIndex.set(c.index, r);
      }
      const text = textOf(c);
      if (typeof text === 'string') r.content += text;
      if (c.finish_reason != null) {
        r.finish_reason = c.finish_reason;
        r.finishes++;
      }
      if (c.content_filter_results !== undefined) r.content_filter_results = c.content_filter_results;
      if (c.copyleft_matches !== undefined) r.copyleft_matches = c.copyleft_matches;
    }
  }

  result() {
    const choices = [...this.byIndex.values()].sort((a, b) => a.index - b.index);
    return { chunks: this.chunks, choices };
  }
}

// main runs fn and prints its result, or the error the client threw, as JSON.
export async function main(fn) {
  try {
    const out = await fn(options());
    process.stdout.write(JSON.stringify(out) + '\n');
  } catch (err) {
    // ollama's ResponseError has its status as status_code.
    const error = { name: err?.constructor?.name, message: String(err?.message ?? err), status: err?.status ?? err?.status_code };
    process.stdout.write(JSON.stringify({ error }) + '\n');
    process.exitCode = 1;
  }
}

// An AgentRecord is what a client received of one answer of the Responses, Messages
// or Ollama API, as the Go tests read it (agentReceived in agents_test.go): the text,
// the reasoning, the tool calls, how the answer ended, the citations the proxy added,
// and every event (or the whole body) as the client parsed it.
export class AgentRecord {
  constructor() {
    this.text = '';
    this.reasoning = '';
    this.tool_calls = []; // {name, arguments}: arguments is JSON text
    this.custom_tool_calls = []; // {name, input}
    this.events = []; // event types, in order; for Ollama "chunk" per object
    this.sequence_numbers = []; // Responses
    this.annotations = []; // Responses: those of the response object's output_text parts
    this.copyleft_matches = null;
    this.raw = [];
  }

  // call returns the tool call record of key (an item id or a block index), made
  // with name on first sight, custom for a custom tool call.
  call(key, name, custom) {
    this.byKey ??= new Map();
    let c = this.byKey.get(key);
    if (!c) {
      c = custom ? { name: name ?? '', input: '' } : { name: name ?? '', arguments: '' };
      this.byKey.set(key, c);
      (custom ? this.custom_tool_calls : this.tool_calls).push(c);
    }
    if (name) c.name = name;
    return c;
  }

  result() {
    const { byKey, ...out } = this;
    return out;
  }
}
