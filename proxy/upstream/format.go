package upstream

import (
	"bytes"
	"iter"
	"math/rand/v2"
	"net/http"
	"strings"
)

// A format is one API's wire format: how its requests are read, and how its answers,
// streams and errors are written. The Server's request handling, faults, chunking and
// framing are shared; only what differs between the APIs is here.
type format interface {
	// parse checks and decodes a request body for the endpoint at path.
	parse(path string, body []byte) (*Request, error)
	// authorized reports whether the request carries key (never called with "").
	authorized(h http.Header, key string) bool
	// statusError is the error the API answers with status; req may be nil.
	statusError(status int, req *Request) *Error
	// errorBody is the body of an error answer.
	errorBody(e *Error) []byte
	// headers sets the answer's headers beside Content-Type.
	headers(h http.Header, a *answer)
	// whole is the non-streamed answer.
	whole(a *answer) []byte
	// events are the streamed answer, produced lazily.
	events(a *answer, rng *rand.Rand) iter.Seq[event]
	// errorEvent is the event that reports a failure after seq events.
	errorEvent(a *answer, seq int) event
	// done is the data of a last event after the answer's own ("[DONE]"), or nil.
	done() []byte
	// ndjson reports that streams are JSON lines rather than SSE.
	ndjson() bool
}

// An event is one streamed event: an SSE event (name may be empty) or an NDJSON line.
// last marks a format's closing event (response.completed, message_stop, the line
// with done true): faults due at the end of the stream strike before it, as they
// strike before [DONE].
type event struct {
	name string
	data []byte
	last bool
}

// formatOf returns the format of the API at path, and false for a path no API
// answers on (its 404 then comes in OpenAI's shape).
func formatOf(path string) (format, bool) {
	switch path {
	case ChatPath, LegacyPath:
		return openAIFormat{}, true
	case ResponsesPath:
		return responsesFormat{}, true
	case MessagesPath:
		return messagesFormat{}, true
	case OllamaChatPath, OllamaGeneratePath:
		return ollamaFormat{}, true
	}
	if strings.HasPrefix(path, "/api/") {
		return ollamaFormat{}, false
	}
	return openAIFormat{}, false
}

// openAIFormat is the chat and legacy completions format; responsesFormat embeds it
// for what the two share (auth, errors, headers).
type openAIFormat struct{}

func (openAIFormat) parse(path string, body []byte) (*Request, error) {
	return parseRequest(path, body)
}

func (openAIFormat) authorized(h http.Header, key string) bool {
	return h.Get("Authorization") == "Bearer "+key
}

func (openAIFormat) statusError(status int, _ *Request) *Error { return statusError(status) }
func (openAIFormat) errorBody(e *Error) []byte                 { return e.body() }

func (openAIFormat) headers(h http.Header, a *answer) {
	h.Set("X-Request-Id", "req_"+randomID(24))
	h.Set("Openai-Model", a.req.Model)
}

func (openAIFormat) whole(a *answer) []byte                           { return a.whole() }
func (openAIFormat) events(a *answer, rng *rand.Rand) iter.Seq[event] { return chatEvents(a, rng) }

func (openAIFormat) errorEvent(*answer, int) event {
	return event{data: statusError(http.StatusInternalServerError).body()}
}

func (openAIFormat) done() []byte { return []byte("[DONE]") }
func (openAIFormat) ndjson() bool { return false }

// pieces yields s in the pieces of piece: 1 to 40 bytes, never inside a character.
func pieces(rng *rand.Rand, s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for pos := 0; pos < len(s); {
			p := piece(rng, s, pos)
			pos += len(p)
			if !yield(p) {
				return
			}
		}
	}
}

// A partKind is a kind of part of a reply.
type partKind int

const (
	partReasoning partKind = iota // Reply.Reasoning
	partText                      // Reply.Content
	partCall                      // one of Reply.ToolCalls
	partCustom                    // one of Reply.CustomToolCalls
)

// A part is one piece of a reply as the newer APIs answer it: an output item
// (Responses), a content block (Messages), a field of the message (Ollama).
type part struct {
	kind   partKind
	name   string // calls: the tool's name
	text   string // the reasoning, the content, a call's arguments or input
	callID string // calls: the call's id
}

// parts returns the parts of reply i that the endpoint answers, in order: reasoning,
// text, tool calls, custom tool calls. The text is left out when it is empty and
// there are calls, as a model that only calls tools answers.
func (a *answer) parts(i int) []part {
	r := a.replies[i]
	path := a.req.Path
	var out []part
	if r.Reasoning != "" && path != ChatPath && path != LegacyPath {
		out = append(out, part{kind: partReasoning, text: r.Reasoning})
	}
	var calls []part
	if path != LegacyPath && path != OllamaGeneratePath {
		for j, c := range r.ToolCalls {
			calls = append(calls, part{kind: partCall, name: c.Name, text: c.Arguments, callID: a.callID(i, j)})
		}
	}
	if path == ResponsesPath {
		for j, c := range r.CustomToolCalls {
			calls = append(calls, part{kind: partCustom, name: c.Name, text: c.Input, callID: a.callID(i, len(r.ToolCalls)+j)})
		}
	}
	if r.Content != "" || len(calls) == 0 {
		out = append(out, part{kind: partText, text: r.Content})
	}
	return append(out, calls...)
}

func (a *answer) callID(choice, call int) string {
	if ids := a.callIDs[choice]; call < len(ids) {
		return ids[call]
	}
	return ""
}

// obj is a JSON object whose keys keep their order, so that events read as the APIs
// write them ("type" first).
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(marshal(f.k))
		b.WriteByte(':')
		b.Write(marshal(f.v))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// typed returns the object {"type":typ, fields...}.
func typed(typ string, fields ...kv) obj {
	return append(obj{{"type", typ}}, fields...)
}

// echo returns raw[name], or def when it is absent or null: the request's settings
// that a response object repeats.
func echo(raw map[string]any, name string, def any) any {
	if v, ok := raw[name]; ok && v != nil {
		return v
	}
	return def
}

// An errorTable holds an API's error type and message by status. Other statuses
// take the type of 400 or 500 and a message naming the status.
type errorTable map[int][2]string

func (t errorTable) error(status int) *Error {
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if te, ok := t[status]; ok {
		return &Error{Status: status, Type: te[0], Message: te[1]}
	}
	base := http.StatusInternalServerError
	if status < 500 {
		base = http.StatusBadRequest
	}
	return &Error{Status: status, Type: t[base][0], Message: "upstream fault: " + http.StatusText(status)}
}
