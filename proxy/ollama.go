package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"cleanroom/fingerprint"
)

// Ollama's native API: POST /api/chat and POST /api/generate. Their streams are
// NDJSON, one JSON object a line, the last one "done": true with a done_reason; an
// error is a line (or a body) {"error": "..."}. Ollama streams unless the request
// says "stream": false.

const (
	endpointOllamaChat     = "ollama_chat"
	endpointOllamaGenerate = "ollama_generate"
)

var ollamaChatFormat = &format{
	name:      endpointOllamaChat,
	suffix:    "/api/chat",
	parse:     func(b []byte) (*request, error) { return parseOllama(false, b) },
	newWire:   func(*request) wire { return &ollamaWire{} },
	lines:     true,
	errorBody: ollamaError,
}

var ollamaGenerateFormat = &format{
	name:      endpointOllamaGenerate,
	suffix:    "/api/generate",
	parse:     func(b []byte) (*request, error) { return parseOllama(true, b) },
	newWire:   func(*request) wire { return &ollamaWire{generate: true} },
	lines:     true,
	errorBody: ollamaError,
}

func init() { formats = append(formats, ollamaChatFormat, ollamaGenerateFormat) }

// ollamaError is an error in Ollama's shape, {"error": "<message>"}: its clients
// read the one string, so the proxy's type and code (and the parameter at fault)
// go into it.
func ollamaError(typ, code, param, message string) []byte {
	var why []string
	for _, s := range []string{typ, code} {
		if s != "" {
			why = append(why, s)
		}
	}
	if param != "" {
		why = append(why, "param "+param)
	}
	if len(why) > 0 {
		message += " (" + strings.Join(why, ", ") + ")"
	}
	b, _ := json.Marshal(map[string]string{"error": message})
	return b
}

// parseOllama reads a request of /api/chat (generate false) or /api/generate. What
// the proxy does not read (raw, images, options, format, think, keep_alive, ...) is
// forwarded untouched with the rest of the body.
func parseOllama(generate bool, body []byte) (*request, error) {
	raw, err := decodeRequest(body)
	if err != nil {
		return nil, err
	}
	if err := checkFold(raw, "", "model", "stream", "messages", "prompt", "suffix", "system"); err != nil {
		return nil, err
	}
	endpoint := endpointOllamaChat
	if generate {
		endpoint = endpointOllamaGenerate
	}
	// Ollama streams unless told not to.
	r := &request{endpoint: endpoint, n: 1, stream: true}
	if err := field(raw, "model", &r.model); err != nil {
		return nil, err
	}
	if err := field(raw, "stream", &r.stream); err != nil {
		return nil, err
	}
	if generate {
		return r, r.parseOllamaPrompt(raw)
	}
	return r, r.parseOllamaMessages(raw["messages"])
}

// parseOllamaMessages reads /api/chat's messages: every content (and thinking, and
// the arguments of earlier tool calls) is text the request sends; the last user
// message's end is the context. Absent messages are allowed: Ollama then loads the
// model and answers with nothing.
func (r *request) parseOllamaMessages(b json.RawMessage) error {
	r.lang = fingerprint.Markdown
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(b, &msgs); err != nil {
		return badf("messages", "messages must be an array of message objects: %v", err)
	}
	last := ""
	for i, m := range msgs {
		if err := checkFold(m, fmt.Sprintf("messages[%d].", i), "role", "content", "thinking", "tool_calls"); err != nil {
			return err
		}
		var role, content, thinking string
		for _, f := range []struct {
			name string
			v    *string
		}{{"role", &role}, {"content", &content}, {"thinking", &thinking}} {
			if err := field(m, f.name, f.v); err != nil {
				return badf(fmt.Sprintf("messages[%d].%s", i, f.name), "messages[%d].%s must be a string", i, f.name)
			}
		}
		for _, s := range []string{content, thinking} {
			if s != "" {
				r.sent = append(r.sent, s)
			}
		}
		if tc, ok := m["tool_calls"]; ok && string(tc) != "null" {
			var calls []struct {
				Function struct {
					Arguments json.RawMessage `json:"arguments"`
				} `json:"function"`
			}
			if err := json.Unmarshal(tc, &calls); err != nil {
				return badf(fmt.Sprintf("messages[%d].tool_calls", i), "messages[%d].tool_calls must be an array of tool calls: %v", i, err)
			}
			for _, c := range calls {
				if a := c.Function.Arguments; len(a) > 0 && string(a) != "null" {
					r.sent = append(r.sent, string(a))
				}
			}
		}
		if role == "user" {
			last = content
		}
	}
	r.context = tail(last)
	return nil
}

// checkFold refuses a key that is one of the names the proxy reads in other
// case: Ollama (encoding/json) reads it as that field, which the proxy would not.
func checkFold(m map[string]json.RawMessage, prefix string, names ...string) error {
	for k := range m {
		for _, n := range names {
			if k != n && strings.EqualFold(k, n) {
				return badf(prefix+k, "%s%s: write the field in lower case, %s", prefix, k, n)
			}
		}
	}
	return nil
}

// parseOllamaPrompt reads /api/generate's prompt, suffix and system: text the
// request sends; the prompt's end is the context, and says the output's language.
func (r *request) parseOllamaPrompt(raw map[string]json.RawMessage) error {
	var prompt string
	for _, f := range []struct {
		name string
		v    *string
	}{{"prompt", &prompt}, {"suffix", nil}, {"system", nil}} {
		var s string
		if err := field(raw, f.name, &s); err != nil {
			return badf(f.name, "%s must be a string", f.name)
		}
		if f.v != nil {
			*f.v = s
		}
		if s != "" {
			r.sent = append(r.sent, s)
		}
	}
	r.lang = promptLang(prompt)
	r.context = tail(prompt)
	return nil
}

// ollamaWire reads and writes Ollama's NDJSON streams and whole bodies, of
// /api/chat (message.content, message.thinking, message.tool_calls) and of
// /api/generate (response, thinking). There is one choice.
type ollamaWire struct {
	generate bool
	model    json.RawMessage // the model of the latest line, for the line the proxy writes
	thinking *text           // the reasoning being read
	// thoughts and said follow the reasoning and the content so far, for a text
	// that resumes them.
	thoughts, said sofar
	doneSent       bool // a done: true line has gone to the client
}

// The fields of Ollama lines.
const (
	ollamaContent  partField = iota // message.content, or response
	ollamaThinking                  // message.thinking, or thinking
	ollamaCall                      // message.tool_calls[call]: one whole call
)

// ollamaLine is what the proxy reads of a line or a whole body.
type ollamaLine struct {
	Model    json.RawMessage
	Message  *ollamaMessage
	Response string
	Thinking string
	Done     bool
	Error    json.RawMessage
}

type ollamaMessage struct {
	Content   string
	Thinking  string
	ToolCalls []json.RawMessage // the arguments of each call
}

// decodeOllamaLine reads an Ollama object; ok is false for anything else (not
// JSON, not an object, its fields of the wrong types): nothing a client of the
// API reads as a reply, and nothing the proxy can check. Keys are matched exactly,
// the last of the same name winning, as JSON parsers do; a key that is a field's
// name in other case makes the object unreadable: Go clients (encoding/json)
// would read it as the field, others would not, so no one reading is safe.
func decodeOllamaLine(data []byte) (l ollamaLine, ok bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return l, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || folded(m, "model", "message", "response", "thinking", "done", "error") {
		return l, false
	}
	l.Model, l.Error = m["model"], m["error"]
	if !member(m, "done", &l.Done) || !member(m, "response", &l.Response) || !member(m, "thinking", &l.Thinking) {
		return l, false
	}
	var msg map[string]json.RawMessage
	if !member(m, "message", &msg) {
		return l, false
	}
	if msg != nil {
		l.Message = &ollamaMessage{}
		var calls []map[string]json.RawMessage
		if folded(msg, "content", "thinking", "tool_calls") || !member(msg, "content", &l.Message.Content) || !member(msg, "thinking", &l.Message.Thinking) || !member(msg, "tool_calls", &calls) {
			return l, false
		}
		for _, c := range calls {
			var fn map[string]json.RawMessage
			if folded(c, "function") || !member(c, "function", &fn) || folded(fn, "arguments") {
				return l, false
			}
			l.Message.ToolCalls = append(l.Message.ToolCalls, fn["arguments"])
		}
	}
	return l, true
}

// folded reports whether a key of m is one of names in other case.
func folded(m map[string]json.RawMessage, names ...string) bool {
	for k := range m {
		for _, n := range names {
			if k != n && strings.EqualFold(k, n) {
				return true
			}
		}
	}
	return false
}

// member decodes m[key] into v, if present and not null, and reports whether it
// could.
func member(m map[string]json.RawMessage, key string, v any) bool {
	raw, ok := m[key]
	return !ok || string(raw) == "null" || json.Unmarshal(raw, v) == nil
}

// texts returns what l carries, for the API w speaks.
func (w *ollamaWire) texts(l *ollamaLine) (thinking, content string, calls []json.RawMessage) {
	if w.generate {
		return l.Thinking, l.Response, nil
	}
	if l.Message == nil {
		return "", "", nil
	}
	return l.Message.Thinking, l.Message.Content, l.Message.ToolCalls
}

func (l *ollamaLine) isError() bool { return len(l.Error) > 0 && string(l.Error) != "null" }

func (w *ollamaWire) read(s *streamFilter, ev sseEvent, e *event) {
	if ev.data == nil {
		e.barrier = true // a blank line
		return
	}
	l, ok := decodeOllamaLine(ev.data)
	if !ok {
		// Not a line of the API: write puts an error line in its place.
		e.barrier = true
		s.upstreamErr = "stream"
		return
	}
	e.data = ev.data
	if l.isError() {
		e.barrier = true // the upstream's error line, passed on as it came
		s.upstreamErr = "stream"
		return
	}
	if len(l.Model) > 0 {
		w.model = l.Model
	}
	c := s.choice(0)
	e.parts = append(e.parts, part{c: c, kind: partPresence})
	if c.blocked != nil {
		return // its pieces are dropped
	}
	thinking, content, calls := w.texts(&l)
	if c.finished {
		// Nothing may follow a choice's end: what does is not checked.
		if thinking != "" || content != "" || len(calls) > 0 {
			e.parts = append(e.parts, part{c: c, kind: partLate})
		}
		return
	}
	// A model writes its reasoning, then its answer, then its tool calls: a text
	// that starts ends the ones before it; one that resumes after another is a new
	// text (a closed one takes no more).
	if thinking != "" {
		if w.thinking == nil || w.thinking.det.closed {
			endTexts(c)
			w.thinking = w.resume(s.filter, c, kindProse, "", &w.thoughts)
		}
		start, end := s.add(w.thinking, thinking)
		w.thoughts.add(thinking)
		e.parts = append(e.parts, part{c: c, kind: partText, t: w.thinking, start: start, end: end, field: ollamaThinking, str: thinking})
	}
	if content != "" {
		if c.content == nil || c.content.det.closed {
			endTexts(c)
			c.content = nil
			if len(w.said.tail) > 0 {
				c.content = w.resume(s.filter, c, kindContent, s.req.context, &w.said)
			}
		}
		t := s.contentText(c)
		start, end := s.add(t, content)
		w.said.add(content)
		e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end, field: ollamaContent, str: content})
	}
	for k, args := range calls {
		// A call comes whole in one line: its text is complete at once.
		endTexts(c)
		t := s.newText(c, kindArgs)
		start, end := s.add(t, string(args))
		t.end()
		e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end, field: ollamaCall, call: k, str: string(args)})
	}
	if l.Done {
		e.done = true
		s.finish(c)
		e.parts = append(e.parts, part{c: c, kind: partFinish})
	}
	s.touch(c)
}

// resume starts a text of kind k (content or reasoning) that goes on from an
// earlier one of the same kind that another text interrupted: a client joins the
// two, so the new one is read behind the end of the earlier (and before that the
// context, the prompt's end for content), inside the code fence it left open, and
// a run split between them is found.
func (w *ollamaWire) resume(f *filter, c *choice, k textKind, context string, earlier *sofar) *text {
	if len(earlier.tail) == 0 {
		return f.newText(c, k)
	}
	lang := fingerprint.Markdown
	if k == kindContent {
		lang = f.req.lang
	}
	ctx := tail(string(earlier.tail))
	if context != "" {
		ctx = tail(context + "\n" + ctx)
	}
	if lang == fingerprint.Markdown && earlier.fence != "" && !strings.Contains(ctx, earlier.fence) {
		ctx = earlier.fence + "\n" + ctx // (only when the earlier text is long: ctx is all its)
	}
	return f.newTextBehind(c, k, ctx)
}

// sofar follows a text across the texts it is split into: its end, and the
// markdown code fence open there.
type sofar struct {
	tail  []byte // the last 4 to 8 KiB, from a line's start
	line  []byte // the start of the current line, as much as a fence line may be
	fence string // the line that opened the fence the text is in, "" if none
}

func (s *sofar) add(p string) {
	s.tail = append(s.tail, p...)
	if len(s.tail) > 2*contextBytes {
		keep := s.tail[len(s.tail)-contextBytes:]
		if i := bytes.IndexByte(keep, '\n'); i >= 0 {
			keep = keep[i+1:]
		}
		s.tail = append(s.tail[:0], keep...)
	}
	for len(p) > 0 {
		i := strings.IndexByte(p, '\n')
		if i < 0 {
			s.line = append(s.line, p[:min(len(p), max(0, 256-len(s.line)))]...)
			return
		}
		s.line = append(s.line, p[:min(i, max(0, 256-len(s.line)))]...)
		s.endLine(strings.TrimRight(string(s.line), "\r"))
		s.line = s.line[:0]
		p = p[i+1:]
	}
}

// endLine follows CommonMark's fences: up to three spaces, then three or more
// backticks or tildes; the closing one of the same byte, at least as long, alone.
func (s *sofar) endLine(l string) {
	t := strings.TrimLeft(l, " ")
	if len(l)-len(t) > 3 || len(t) < 3 || t[0] != '`' && t[0] != '~' {
		return
	}
	n := len(t) - len(strings.TrimLeft(t, t[:1]))
	if n < 3 {
		return
	}
	if s.fence == "" {
		if t[0] != '`' || !strings.Contains(t[n:], "`") {
			s.fence = l
		}
		return
	}
	o := strings.TrimLeft(s.fence, " ")
	if t[0] == o[0] && n >= len(o)-len(strings.TrimLeft(o, o[:1])) && strings.TrimSpace(t[n:]) == "" {
		s.fence = ""
	}
}

// endTexts ends every text of c: a new one starts.
func endTexts(c *choice) {
	for _, u := range c.texts {
		u.end()
	}
}

func (w *ollamaWire) write(s *streamFilter, e *event) {
	if e.barrier {
		switch {
		case e.data == nil && len(bytes.TrimSpace(e.raw)) > 0:
			// A line that is not the API's: no client can read it, and its text is
			// unchecked. It is dropped, and the client told.
			s.out.Write(w.errorEvent("upstream_error", "upstream_bad_line",
				"the upstream sent a line that is not an Ollama JSON object; cleanroom dropped it"))
		case e.data != nil:
			s.out.Write(onlyError(e.data, e.raw)) // the upstream's error line
		default:
			s.out.Write(e.raw)
		}
		return
	}
	c := e.parts[0].c
	switch {
	case c.final:
		return // the proxy has ended this choice already
	case c.blocked != nil:
		w.cut(s, e, c)
		return
	case e.has(c, partLate):
		return // unchecked text after the end: the line does not go out
	case e.has(c, partFinish):
		w.doneSent = true
		if cs := shown(s.cite(c)); len(cs) > 0 {
			obj, err := decodeObject(e.data)
			if err != nil {
				return // not reached: the line was read as a JSON object
			}
			obj["copyleft_matches"] = cs
			writeLine(&s.out, obj)
			return
		}
	case e.done:
		w.doneSent = true
	}
	s.out.Write(e.raw)
}

// onlyError returns the error object data, raw as it came, as it is when it
// carries only its error; else {"error": ...} alone: what else it carries
// (a response, a message) is unchecked.
func onlyError(data, raw []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || len(m) == 1 {
		return raw
	}
	b, _ := json.Marshal(map[string]json.RawMessage{"error": m["error"]})
	if bytes.HasSuffix(raw, []byte("\n")) {
		b = append(b, '\n')
	}
	return b
}

// cut writes what a line carries of the blocked choice c that was checked before
// the cut: its texts trimmed, the tool calls that are clean and before the cut;
// nothing when nothing is left. A line's done: true does not go out: final writes
// the choice's end.
func (w *ollamaWire) cut(s *streamFilter, e *event, c *choice) {
	obj, err := decodeObject(e.data)
	if err != nil {
		return
	}
	holder := obj // where the texts are
	if !w.generate {
		holder, _ = obj["message"].(map[string]any)
		if holder == nil {
			return
		}
	}
	texts := map[partField]string{}
	calls, _ := holder["tool_calls"].([]any)
	var kept []any
	for _, p := range e.parts {
		if p.c != c || p.kind != partText {
			continue
		}
		keep := c.blocked.keep(p)
		switch p.field {
		case ollamaContent, ollamaThinking:
			texts[p.field] = p.str[:keep]
		case ollamaCall:
			// A call goes out whole, if it is clean and before the cut.
			if lim, ok := c.blocked.limits[p.t]; ok && lim >= p.end && p.call < len(calls) {
				kept = append(kept, calls[p.call])
			}
		}
	}
	left := len(kept) > 0
	content, thinking := "content", "thinking"
	if w.generate {
		content = "response"
	}
	for f, key := range map[partField]string{ollamaContent: content, ollamaThinking: thinking} {
		if _, ok := holder[key].(string); ok {
			holder[key] = texts[f]
			left = left || texts[f] != ""
		}
	}
	if len(kept) > 0 {
		holder["tool_calls"] = kept
	} else {
		delete(holder, "tool_calls")
	}
	if !left {
		return
	}
	if obj["done"] == true {
		obj["done"] = false
		delete(obj, "done_reason")
	}
	writeLine(&s.out, obj)
}

// ollamaEnd is the last line of a choice the proxy cut: the API's end of a stream,
// in the order Ollama writes its fields.
type ollamaEnd struct {
	Model      json.RawMessage   `json:"model"`
	CreatedAt  string            `json:"created_at"`
	Message    *ollamaEndMessage `json:"message,omitempty"`
	Response   *string           `json:"response,omitempty"`
	Done       bool              `json:"done"`
	DoneReason string            `json:"done_reason"`
	Matches    []citation        `json:"copyleft_matches"`
}

type ollamaEndMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// final writes the end of the cut choice: done: true, done_reason content_filter,
// and the citations. Ollama defines no reason for a filtered answer; its clients
// read done_reason as a plain string, and content_filter is the one OpenAI's API
// (which Ollama also serves) gives one, so clients that know either know it.
func (w *ollamaWire) final(s *streamFilter, c *choice) {
	end := ollamaEnd{Model: w.model, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano), Done: true,
		DoneReason: "content_filter", Matches: shown(s.cite(c))}
	if end.Model == nil {
		end.Model, _ = json.Marshal(s.req.model)
	}
	if end.Matches == nil {
		end.Matches = []citation{}
	}
	if w.generate {
		end.Response = new(string)
	} else {
		end.Message = &ollamaEndMessage{Role: "assistant"}
	}
	b, err := encodeJSON(end)
	if err != nil {
		return
	}
	s.out.Write(b)
	w.doneSent = true
}

// stop writes nothing: final wrote the stream's end.
func (w *ollamaWire) stop(s *streamFilter) {}

// partial takes the last line of a stream that lacks only its newline: NDJSON's
// last line is whole without it.
func (w *ollamaWire) partial(s *streamFilter, ev sseEvent) {
	if ev.data == nil {
		return
	}
	raw := append(bytes.Clone(ev.raw), '\n')
	s.handle(sseEvent{raw: raw, data: raw[:len(raw)-1]})
}

func (w *ollamaWire) complete() bool  { return w.doneSent }
func (w *ollamaWire) endMark() string { return "done: true" }

// errorEvent is Ollama's error line.
func (w *ollamaWire) errorEvent(typ, code, message string) []byte {
	return append(ollamaError(typ, code, "", message), '\n')
}

// writeLine writes obj as one NDJSON line.
func writeLine(w *bytes.Buffer, obj map[string]any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(obj) // ends with "\n"
}

// whole filters a whole Ollama body (stream: false): one object with a message or
// a response. A body of several lines (a stream the upstream did not label as
// one) is filtered as the stream it is.
func (w *ollamaWire) whole(f *filter, body []byte) ([]byte, error) {
	obj, err := decodeObject(body)
	if more := hasMore(body); err != nil || more {
		if more || bytes.Count(bytes.TrimSpace(body), []byte("\n")) > 0 {
			return w.wholeLines(f, body)
		}
		return body, nil // not a JSON object: nothing the proxy can read, nothing a client can either
	}
	l, ok := decodeOllamaLine(body)
	if l.isError() {
		f.upstreamErr = "status" // an error in place of a reply
		return onlyError(body, body), nil
	}
	if !ok {
		// An object of the wrong shape: a client cannot read a reply from it, and
		// the proxy cannot check it.
		f.upstreamErr = "status"
		return ollamaError("upstream_error", "upstream_bad_response", "",
			"the upstream's reply is not an Ollama response; cleanroom dropped it"), nil
	}
	holder := obj
	if !w.generate {
		holder, _ = obj["message"].(map[string]any)
	}
	thinking, content, calls := w.texts(&l)
	c := f.choice(0)
	var thinkT, contentT *text
	if thinking != "" {
		thinkT = f.newText(c, kindProse)
		f.add(thinkT, thinking)
	}
	if content != "" {
		contentT = f.contentText(c)
		f.add(contentT, content)
	}
	callT := make([]*text, len(calls))
	for k, args := range calls {
		callT[k] = f.newText(c, kindArgs)
		f.add(callT[k], string(args))
	}
	f.finish(c)
	f.decide(c)
	c.cited = f.citations(c)
	c.final = true
	switch {
	case c.blocked != nil:
		b := c.blocked
		contentKey := "content"
		if w.generate {
			contentKey = "response"
		}
		for _, x := range []struct {
			t   *text
			key string
			s   string
		}{{thinkT, "thinking", thinking}, {contentT, contentKey, content}} {
			if x.t != nil && holder != nil {
				holder[x.key] = x.s[:min(len(x.s), b.limits[x.t])]
			}
		}
		if len(calls) > 0 && holder != nil {
			list, _ := holder["tool_calls"].([]any)
			var kept []any
			for k, t := range callT {
				if lim, ok := b.limits[t]; ok && lim >= t.n && k < len(list) {
					kept = append(kept, list[k])
				} else {
					break // the cut one and those after it go
				}
			}
			if len(kept) > 0 {
				holder["tool_calls"] = kept
			} else {
				delete(holder, "tool_calls")
			}
		}
		obj["done_reason"] = "content_filter"
		obj["copyleft_matches"] = shown(c.cited)
	case len(shown(c.cited)) > 0:
		obj["copyleft_matches"] = shown(c.cited)
	default:
		return body, nil
	}
	return encodeJSON(obj)
}

// hasMore reports whether body holds more than one JSON value.
func hasMore(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return false
	}
	_, err := dec.Token()
	return err != io.EOF
}

// wholeLines filters a body of NDJSON lines as a stream.
func (w *ollamaWire) wholeLines(f *filter, body []byte) ([]byte, error) {
	sf := newStreamFilter(f, w, true, io.NopCloser(bytes.NewReader(body)), f.s.opts.MaxEvent, nil)
	out, err := io.ReadAll(sf)
	sf.Close()
	return out, err
}
