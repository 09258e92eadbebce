package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A Reply is what the fake model answers for one choice.
type Reply struct {
	// Content is the assistant text (chat, Responses, Messages, Ollama chat) or the
	// completion text (legacy, Ollama generate).
	Content string `json:"content,omitempty"`
	// Reasoning is the model's thinking, sent before Content: a reasoning item's
	// summary text (Responses), a thinking block with a signature (Messages), the
	// message's or answer's "thinking" (Ollama). The chat and legacy endpoints
	// ignore it.
	Reasoning string `json:"reasoning,omitempty"`
	// ToolCalls are function calls, sent after Content. Legacy completions and
	// Ollama generate ignore them. The Messages and Ollama APIs carry the arguments
	// as an object, so there Arguments must be a JSON object (empty means {}).
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// CustomToolCalls are calls of custom (freeform) tools, sent after ToolCalls;
	// only the Responses API answers them (custom_tool_call items).
	CustomToolCalls []CustomToolCall `json:"custom_tool_calls,omitempty"`
	// Finish is the finish_reason. Default "stop", or "tool_calls" when there are
	// ToolCalls (as the API answers when a model calls tools, with or without text
	// before the calls). Any string is sent as given, e.g. "length". The other APIs
	// translate it: "length" is an incomplete response (Responses), stop_reason
	// "max_tokens" (Messages) and done_reason "length" (Ollama); see their files.
	Finish string `json:"finish_reason,omitempty"`
}

// A ToolCall is one function call made by the fake model.
type ToolCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // the JSON text of the arguments, streamed in pieces
}

// A CustomToolCall is one call of a custom tool: freeform text input, not JSON.
type CustomToolCall struct {
	Name  string `json:"name"`
	Input string `json:"input"` // streamed in pieces
}

// finish returns the finish_reason of r for the endpoint at path.
func (r Reply) finish(path string) string {
	switch {
	case r.Finish != "":
		return r.Finish
	case len(r.ToolCalls) > 0 && path == ChatPath:
		return "tool_calls"
	}
	return "stop"
}

// A Script decides the replies to one request: one Reply per choice, so len(replies)
// must be r.N. It may return an *Error to answer with an API error.
type Script func(r *Request) ([]Reply, error)

// EchoScript answers every choice with the last user message (chat) or the prompt
// (legacy).
func EchoScript(r *Request) ([]Reply, error) {
	return repeat(Reply{Content: r.LastUser()}, r.N), nil
}

// ReplayScript returns a Script that plays a model regurgitating texts: choice i
// answers texts[(h+i) % len(texts)], where h is a hash of the request's messages or
// prompt, so the same question always gets the same answer. Wrap a text with Markdown
// to have it answered as a fenced code block in prose. With no texts it echoes.
func ReplayScript(texts ...string) Script {
	if len(texts) == 0 {
		return EchoScript
	}
	return func(r *Request) ([]Reply, error) {
		h := r.hash()
		out := make([]Reply, r.N)
		for i := range out {
			out[i].Content = texts[(h+uint64(i))%uint64(len(texts))]
		}
		return out, nil
	}
}

// Markdown wraps text as a chat model's answer: a sentence, a fenced code block in
// language lang (may be empty), and a closing remark.
func Markdown(lang, text string) string {
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return "Here is an implementation:\n\n```" + lang + "\n" + text +
		"```\n\nThis implementation handles the common cases; adjust it to your needs.\n"
}

// FixedScript returns a Script that answers choice i with replies[i % len(replies)],
// whatever the request.
func FixedScript(replies ...Reply) Script {
	return func(r *Request) ([]Reply, error) {
		if len(replies) == 0 {
			return nil, errors.New("FixedScript has no replies")
		}
		return cycle(replies, r.N), nil
	}
}

func repeat(r Reply, n int) []Reply {
	out := make([]Reply, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func cycle(replies []Reply, n int) []Reply {
	out := make([]Reply, n)
	for i := range out {
		out[i] = replies[i%len(replies)]
	}
	return out
}

// DirectivePrefix starts the first line of a last user message (or prompt) that
// scripts the reply itself: the rest of the line is JSON, a Reply or an array of
// them, and choice i answers reply i % len. It takes precedence over Server.Script, so
// that tests that cannot install a Go Script (the SDK tests in other languages) can
// still say what the model answers:
//
//	#upstream: [{"content":"Hello"},{"tool_calls":[{"name":"f","arguments":"{\"x\":1}"}]}]
//	#upstream: {"reasoning":"Think first.","content":"Hi","custom_tool_calls":[{"name":"sh","input":"ls -l"}]}
//
// The endpoints that answer one choice (Responses, Messages, Ollama) answer the
// first reply.
const DirectivePrefix = "#upstream:"

// Directive returns the first line of a message that scripts replies as given.
func Directive(replies ...Reply) string {
	b, _ := json.Marshal(replies)
	return DirectivePrefix + " " + string(b)
}

// directive returns the replies scripted by r's last user message, if it starts with
// DirectivePrefix.
func directive(r *Request) ([]Reply, bool, error) {
	text := r.LastUser()
	if !strings.HasPrefix(text, DirectivePrefix) {
		return nil, false, nil
	}
	line, _, _ := strings.Cut(text[len(DirectivePrefix):], "\n")
	line = strings.TrimSpace(line)
	var replies []Reply
	var err error
	if strings.HasPrefix(line, "{") {
		var one Reply
		err = strictJSON(line, &one)
		replies = []Reply{one}
	} else {
		err = strictJSON(line, &replies)
	}
	if err == nil && len(replies) == 0 {
		err = errors.New("no replies")
	}
	if err != nil {
		return nil, true, invalid("messages", "", "bad %s directive: %v", DirectivePrefix, err)
	}
	return cycle(replies, r.N), true, nil
}

func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing text after JSON")
	}
	return nil
}

// sanitize makes reply text valid UTF-8, as any JSON encoder would, so that streamed
// deltas (cut only between characters) reassemble to exactly what a non-streamed
// answer holds.
func sanitize(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}
