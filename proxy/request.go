package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"cleanroom/fingerprint"
)

// Endpoints the proxy filters, the endpoint label of its metrics; endpointOther is
// that of requests for paths it neither checks nor passes.
const (
	endpointChat        = "chat"
	endpointCompletions = "completions"
	endpointOther       = "other"
)

// contextLines is how much of the prompt's end the proxy fingerprints before the
// output, so that a copyleft run begun in the prompt and completed by the model is a
// match: its last lines, at most contextBytes.
const (
	contextLines = 20
	contextBytes = 4 << 10
	maxN         = 128
)

// request is what the proxy needs to know of a completion request. The body itself is
// forwarded untouched, unknown fields and all.
type request struct {
	format   *format // set by the server: the API it is for
	endpoint string
	model    string
	stream   bool
	n        int
	lang     fingerprint.Lang // of the output
	context  string           // the prompt's last lines
	sent     []string         // every text the request sends: output repeating it is no new copying
}

// badRequest is a request the proxy answers itself with 400.
type badRequest struct {
	param, msg string
}

func (e *badRequest) Error() string { return e.msg }

func badf(param, format string, args ...any) error {
	return &badRequest{param: param, msg: fmt.Sprintf(format, args...)}
}

// parseRequest reads a chat or legacy completion request.
func parseRequest(endpoint string, body []byte) (*request, error) {
	raw, err := decodeRequest(body)
	if err != nil {
		return nil, err
	}
	r := &request{endpoint: endpoint, n: 1}
	if err := field(raw, "model", &r.model); err != nil {
		return nil, err
	}
	if err := field(raw, "stream", &r.stream); err != nil {
		return nil, err
	}
	if err := field(raw, "n", &r.n); err != nil {
		return nil, err
	}
	if _, ok := raw["n"]; ok && (r.n < 1 || r.n > maxN) {
		return nil, badf("n", "n must be between 1 and %d, got %d", maxN, r.n)
	}
	switch endpoint {
	case endpointChat:
		if err := r.parseMessages(raw["messages"]); err != nil {
			return nil, err
		}
	case endpointCompletions:
		if err := r.parsePrompt(raw["prompt"], raw["suffix"]); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// decodeRequest decodes a request body: one JSON object, its members by their
// exact keys.
func decodeRequest(body []byte) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, badf("", "the request body is not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, badf("", "the request body has data after its JSON object")
	}
	return raw, nil
}

// field decodes raw[name] into v, if present and not null.
func field(raw map[string]json.RawMessage, name string, v any) error {
	b, ok := raw[name]
	if !ok || string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badf(name, "%s has the wrong type: %v", name, err)
	}
	return nil
}

func (r *request) parseMessages(b json.RawMessage) error {
	if b == nil {
		return badf("messages", "messages is required")
	}
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &msgs); err != nil {
		return badf("messages", "messages must be an array of messages: %v", err)
	}
	r.lang = fingerprint.Markdown
	last := ""
	for i, m := range msgs {
		text, err := contentText(m.Content)
		if err != nil {
			return badf(fmt.Sprintf("messages[%d].content", i), "%v", err)
		}
		if text != "" {
			r.sent = append(r.sent, text)
		}
		if m.Role == "user" {
			last = text
		}
	}
	r.context = tail(last)
	return nil
}

// contentText returns the text of a message's content: a string, or the text parts
// of an array of parts.
func contentText(b json.RawMessage) (string, error) {
	if len(b) == 0 || string(b) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return "", fmt.Errorf("content must be a string or an array of parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n"), nil
}

func (r *request) parsePrompt(prompt, suffix json.RawMessage) error {
	var text string
	if len(prompt) > 0 && string(prompt) != "null" {
		if err := json.Unmarshal(prompt, &text); err != nil {
			var many []json.RawMessage
			if err := json.Unmarshal(prompt, &many); err != nil {
				return badf("prompt", "prompt must be a string, an array of strings or of token arrays")
			}
			// A batch of prompts: the first one sets the context. Token arrays carry no
			// text the proxy can read.
			for i, p := range many {
				var s string
				if json.Unmarshal(p, &s) == nil {
					r.sent = append(r.sent, s)
					if i == 0 {
						text = s
					}
				}
			}
		} else {
			r.sent = append(r.sent, text)
		}
	}
	var suf string
	if len(suffix) > 0 && json.Unmarshal(suffix, &suf) == nil && suf != "" {
		r.sent = append(r.sent, suf)
	}
	r.lang = promptLang(text)
	r.context = tail(text)
	return nil
}

// promptLang is the language a completion of prompt is read in: the prompt's own
// (code goes on as code), or markdown for a prompt in words, which a model
// answers as it answers a chat: prose, code in fenced blocks of their languages
// (read as C, the fence's Emacs Lisp would not be found).
func promptLang(prompt string) fingerprint.Lang {
	l := fingerprint.Guess([]byte(prompt))
	if l == fingerprint.Text || l == fingerprint.C && !strings.ContainsAny(prompt, "{}();=[]<>#*/\\") {
		return fingerprint.Markdown
	}
	return l
}

// tail returns the last contextLines lines of s, at most contextBytes.
func tail(s string) string {
	if len(s) > contextBytes {
		s = s[len(s)-contextBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	n := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' && i < len(s)-1 {
			if n++; n == contextLines {
				return s[i+1:]
			}
		}
	}
	return s
}
