package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cleanroom/fingerprint"
)

// The Anthropic Messages API (POST .../messages): one answer made of content
// blocks (text, tool_use, thinking, redacted_thinking, server tool blocks),
// streamed as server-sent events ("event: content_block_delta" with a JSON "data"
// whose type says the same): message_start, then per block content_block_start,
// content_block_delta* and content_block_stop, then message_delta (the
// stop_reason and usage) and message_stop; ping and error may come between.
//
// Every block is a text of the one choice: a text block is answer text (read in
// markdown behind the prompt's end), a thinking block reasoning (markdown, alone),
// a tool_use block the JSON of its input (its strings read as code; it goes out
// whole once checked whole, or not at all). A blocked answer ends as the API ends
// one its own safety filters stop: stop_reason "refusal". An event type or a
// delta type the proxy does not know ends the stream with an error event: what it
// cannot read must not pass unchecked.
var messagesFormat = &format{
	name:      endpointMessages,
	suffix:    "/messages",
	parse:     parseMessagesRequest,
	newWire:   func(*request) wire { return newMessagesWire() },
	errorBody: anthropicError,
}

const endpointMessages = "messages"

func init() { formats = append(formats, messagesFormat) }

// anthropicError is an error in Anthropic's shape,
// {"type":"error","error":{"type":"invalid_request_error","message":...}}: its
// clients read the type and the message, so the proxy's code and the parameter at
// fault go into the message. The proxy's own failures are api_error, Anthropic's
// type for a failure on the server's side.
func anthropicError(typ, code, param, message string) []byte {
	b, _ := json.Marshal(anthropicErrorObject(typ, code, param, message))
	return b
}

func anthropicErrorObject(typ, code, param, message string) map[string]any {
	switch typ {
	case "server_error", "upstream_error":
		typ = "api_error"
	case "":
		typ = "api_error"
	}
	if param != "" && !strings.HasPrefix(message, param+":") {
		message = param + ": " + message // as Anthropic names a field at fault
	}
	if code != "" && code != "invalid_request" {
		message += " (" + code + ")"
	}
	return map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": message}}
}

// parseMessagesRequest reads a Messages request: the texts of its messages
// (text blocks, tool results, tool inputs, thinking) and its system prompt are
// what it sends; the last user message's text is the context.
func parseMessagesRequest(body []byte) (*request, error) {
	raw, err := decodeRequest(body)
	if err != nil {
		return nil, err
	}
	r := &request{endpoint: endpointMessages, n: 1, lang: fingerprint.Markdown}
	if err := field(raw, "model", &r.model); err != nil {
		return nil, err
	}
	if err := field(raw, "stream", &r.stream); err != nil {
		return nil, err
	}
	var maxTokens int
	if err := field(raw, "max_tokens", &maxTokens); err != nil {
		return nil, err
	}
	if sys := raw["system"]; len(sys) > 0 && string(sys) != "null" {
		texts, err := blockTexts(sys, "system")
		if err != nil {
			return nil, err
		}
		r.sent = append(r.sent, texts...)
	}
	b := raw["messages"]
	if len(b) == 0 || string(b) == "null" {
		return nil, badf("messages", "messages is required")
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(b, &msgs); err != nil {
		return nil, badf("messages", "messages must be an array of messages: %v", err)
	}
	last := ""
	for i, mb := range msgs {
		var m struct {
			Role    *string         `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		param := fmt.Sprintf("messages[%d]", i)
		if err := json.Unmarshal(mb, &m); err != nil {
			return nil, badf(param, "%s must be a message object with a string role: %v", param, err)
		}
		texts, err := blockTexts(m.Content, param+".content")
		if err != nil {
			return nil, err
		}
		r.sent = append(r.sent, texts...)
		if m.Role != nil && *m.Role == "user" {
			last = strings.Join(texts, "\n")
		}
	}
	r.context = tail(last)
	return r, nil
}

// blockTexts returns the texts of a content (a string, or an array of content
// blocks) that param names: text blocks, tool results (a string or text blocks),
// the strings of tool inputs, thinking, and plain-text documents.
func blockTexts(b json.RawMessage, param string) ([]string, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	var blocks []json.RawMessage
	if err := json.Unmarshal(b, &blocks); err != nil {
		return nil, badf(param, "%s must be a string or an array of content blocks", param)
	}
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	for j, x := range blocks {
		bp := fmt.Sprintf("%s[%d]", param, j)
		var bl struct {
			Type     string          `json:"type"`
			Text     *string         `json:"text"`
			Thinking *string         `json:"thinking"`
			Input    json.RawMessage `json:"input"`
			Content  json.RawMessage `json:"content"`
			Source   *struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			} `json:"source"`
		}
		if err := json.Unmarshal(x, &bl); err != nil {
			return nil, badf(bp, "%s must be a content block object: %v", bp, err)
		}
		switch bl.Type {
		case "text":
			if bl.Text == nil {
				return nil, badf(bp+".text", "%s.text must be a string", bp)
			}
			add(*bl.Text)
		case "thinking":
			if bl.Thinking != nil {
				add(*bl.Thinking)
			}
		case "tool_use", "server_tool_use", "mcp_tool_use":
			if len(bl.Input) > 0 {
				add(string((&jsonStrings{}).feed(bl.Input)))
			}
		case "tool_result", "mcp_tool_result":
			texts, err := blockTexts(bl.Content, bp+".content")
			if err != nil {
				return nil, err
			}
			out = append(out, texts...)
		case "document":
			if bl.Source != nil && bl.Source.Type == "text" {
				var d string
				if json.Unmarshal(bl.Source.Data, &d) == nil {
					add(d)
				}
			}
		}
	}
	return out, nil
}

// msgBlock is one content block of a streamed message.
type msgBlock struct {
	index   int
	typ     string
	t       *text
	stopped bool // its content_block_stop was read
	open    bool // its content_block_start went to the client, its stop not yet
}

// msgMeta is what read learned of an event, for write.
type msgMeta struct {
	typ    string
	block  *msgBlock
	key    string // the JSON key of the piece of text: content_block.KEY or delta.KEY
	poison string // why the proxy cannot pass this event, if it cannot
}

// messagesWire reads and writes one Messages stream.
type messagesWire struct {
	blocks   map[int]*msgBlock
	order    []*msgBlock // in the order they started
	metas    []msgMeta   // what read learned of the events write has yet to write, from head on
	head     int
	reported int  // output_tokens as the upstream last reported them
	stopSent bool // a message_stop went to the client
	ended    bool // the proxy ended the message (a blocked answer)
}

func newMessagesWire() *messagesWire {
	return &messagesWire{blocks: map[int]*msgBlock{}}
}

// msgEvent is what read decodes of an event's JSON. A field of the wrong type
// makes the event unreadable.
type msgEvent struct {
	Type         string
	Index        *int
	Message      *msgMessage
	ContentBlock *msgContentBlock
	Delta        *msgDeltaIn
	Usage        *msgUsage
}

type msgMessage struct {
	Content []json.RawMessage
	Usage   *msgUsage
}

type msgContentBlock struct {
	Type           string
	Text, Thinking *string
	Input          json.RawMessage
}

type msgDeltaIn struct {
	Type                                    string
	Text, PartialJSON, Thinking, StopReason *string
}

type msgUsage struct {
	OutputTokens *int
}

// decodeMsgEvent decodes an event's JSON by its exact keys, in one pass (see
// jsonscan.go). (encoding/json matches struct fields without regard to case, and
// takes the last of the keys that match: {"text": <code>, "Text": "x"} would read
// as "x", while a client reads the code.) Of keys given twice the last counts, as
// in JavaScript and Python.
func decodeMsgEvent(data []byte) (m msgEvent, err error) {
	bad := ""
	r := jsonReader{b: data}
	if r.peek() != '{' {
		return m, errors.New("the event is not a JSON object")
	}
	usage := func() *msgUsage {
		u := &msgUsage{}
		if !r.nullObject("usage", &bad, func(k []byte) {
			if string(k) == "output_tokens" {
				r.nullInt(&u.OutputTokens, "output_tokens", &bad)
				return
			}
			r.skip()
		}) {
			return nil
		}
		return u
	}
	var typ *string
	r.object(func(key []byte) {
		switch string(key) {
		case "type":
			r.nullString(&typ, "type", &bad)
		case "index":
			r.nullInt(&m.Index, "index", &bad)
		case "usage":
			m.Usage = usage()
		case "message":
			m.Message = &msgMessage{}
			if !r.nullObject("message", &bad, func(k []byte) {
				switch string(k) {
				case "content":
					m.Message.Content = nil
					if r.peek() == 'n' {
						r.skip()
						return
					}
					if r.peek() != '[' {
						r.skip()
						bad = "message.content is not an array"
						return
					}
					r.array(func() { m.Message.Content = append(m.Message.Content, r.raw()) })
				case "usage":
					m.Message.Usage = usage()
				default:
					r.skip()
				}
			}) {
				m.Message = nil
			}
		case "content_block":
			m.ContentBlock = nil
			cb := &msgContentBlock{}
			var t *string
			if !r.nullObject("content_block", &bad, func(k []byte) {
				switch string(k) {
				case "type":
					r.nullString(&t, "type", &bad)
				case "text":
					r.nullString(&cb.Text, "text", &bad)
				case "thinking":
					r.nullString(&cb.Thinking, "thinking", &bad)
				case "input":
					cb.Input = r.raw()
				default:
					r.skip()
				}
			}) {
				return
			}
			if t != nil {
				cb.Type = *t
			}
			m.ContentBlock = cb
		case "delta":
			m.Delta = nil
			d := &msgDeltaIn{}
			var t *string
			if !r.nullObject("delta", &bad, func(k []byte) {
				switch string(k) {
				case "type":
					r.nullString(&t, "type", &bad)
				case "text":
					r.nullString(&d.Text, "text", &bad)
				case "partial_json":
					r.nullString(&d.PartialJSON, "partial_json", &bad)
				case "thinking":
					r.nullString(&d.Thinking, "thinking", &bad)
				case "stop_reason":
					r.nullString(&d.StopReason, "stop_reason", &bad)
				default:
					r.skip()
				}
			}) {
				return
			}
			if t != nil {
				d.Type = *t
			}
			m.Delta = d
		default:
			r.skip()
		}
	})
	r.ws()
	switch {
	case r.bad || r.i != len(r.b):
		return m, errors.New("the event is not valid JSON")
	case bad != "":
		return m, errors.New(bad)
	}
	if typ != nil {
		m.Type = *typ
	}
	return m, nil
}

// msgStray returns the text field of a block or delta of type typ that does not
// belong to it ("" if none): a client that prints every delta's text would show
// one the proxy did not read, so such an event is not passed.
func msgStray(typ string, fields map[string]*string) string {
	own := map[string]string{"text": "text", "text_delta": "text", "thinking": "thinking", "thinking_delta": "thinking",
		"input_json_delta": "partial_json"}[typ]
	if own == "" && !toolBlocks[typ] && typ != "redacted_thinking" && typ != "signature_delta" && typ != "citations_delta" {
		return "" // a block the proxy reads whole
	}
	for _, k := range []string{"text", "thinking", "partial_json"} {
		if v := fields[k]; v != nil && k != own {
			return "a " + k
		}
	}
	return ""
}

// toolBlocks are the block types whose input is a tool's arguments: a JSON object
// that streams as input_json_delta pieces.
var toolBlocks = map[string]bool{"tool_use": true, "server_tool_use": true, "mcp_tool_use": true}

func (w *messagesWire) read(s *streamFilter, ev sseEvent, e *event) {
	meta := msgMeta{}
	defer func() {
		if meta.poison != "" {
			w.unreadable(s, e)
		}
		w.metas = append(w.metas, meta)
	}()
	if ev.data == nil {
		e.barrier = true // a comment, a keep-alive
		return
	}
	data := bytes.TrimSpace(ev.data)
	m, err := decodeMsgEvent(data)
	if err != nil || m.Type == "" {
		meta.poison = "an event that is not a Messages event"
		if err != nil {
			meta.poison += " (" + err.Error() + ")"
		}
		return
	}
	e.data = data
	meta.typ = m.Type
	switch m.Type {
	case "ping":
		e.barrier = true
		return
	case "error":
		// The upstream's own error: it goes on to the client, after what was checked.
		s.upstreamErr = "stream"
		s.finishAll()
		e.barrier = true
		return
	}
	c := s.choice(0)
	e.parts = append(e.parts, part{c: c, kind: partPresence})
	if c.blocked != nil {
		e.parts = append(e.parts, part{c: c, kind: partLate}) // after the cut: dropped
		return
	}
	if c.finished && m.Type != "message_stop" {
		// Nothing but message_stop may follow the message's end: what does is not
		// checked, so it does not go out.
		e.parts = append(e.parts, part{c: c, kind: partLate})
		return
	}
	defer s.touch(c)
	var b *msgBlock
	if m.Index != nil {
		b = w.blocks[*m.Index]
	}
	meta.block = b
	switch m.Type {
	case "message_start":
		if m.Message == nil {
			meta.poison = "a message_start without a message"
		} else if len(m.Message.Content) > 0 {
			meta.poison = "a message_start whose message has content"
		} else if u := m.Message.Usage; u != nil && u.OutputTokens != nil {
			w.reported = *u.OutputTokens
		}
	case "content_block_start":
		switch {
		case m.Index == nil || m.ContentBlock == nil:
			meta.poison = "a content_block_start without an index or a content_block"
			return
		case b != nil:
			meta.poison = fmt.Sprintf("a second content_block_start for block %d", *m.Index)
			return
		}
		for _, u := range c.texts {
			u.end() // the blocks before it are complete
		}
		cb := m.ContentBlock
		if stray := msgStray(cb.Type, map[string]*string{"text": cb.Text, "thinking": cb.Thinking}); stray != "" {
			meta.poison = fmt.Sprintf("a %s block that carries %s", cb.Type, stray)
			return
		}
		b = &msgBlock{index: *m.Index, typ: cb.Type}
		w.blocks[b.index] = b
		w.order = append(w.order, b)
		meta.block = b
		piece := ""
		switch {
		case cb.Type == "text":
			b.t, meta.key = s.newText(c, kindContent), "text"
			if cb.Text != nil {
				piece = *cb.Text
			}
		case cb.Type == "thinking":
			b.t, meta.key = s.newText(c, kindProse), "thinking"
			if cb.Thinking != nil {
				piece = *cb.Thinking
			}
		case cb.Type == "redacted_thinking":
			b.t = s.newText(c, kindProse) // opaque data: no text, but a place among the blocks
		case toolBlocks[cb.Type]:
			// Its input is {} here and streams as input_json_delta pieces; one sent
			// whole here is read too.
			b.t = s.newText(c, kindArgs)
			piece = string(cb.Input)
		default:
			// A block that comes whole (a server tool's result, a block type newer
			// than the proxy): its strings are read, and it goes out whole or not at
			// all. No delta may follow it.
			b.t = s.newText(c, kindArgs)
			if full, err := decodeObject(data); err == nil {
				if enc, err := encodeJSON(full["content_block"]); err == nil {
					piece = string(enc)
				}
			}
		}
		// A tool block's start waits with its block: the call goes out whole or
		// not at all, its start included.
		start, end := s.add(b.t, piece)
		e.parts = append(e.parts, part{c: c, kind: partText, t: b.t, start: start, end: end, str: piece})
		if b.t.tool && !toolBlocks[cb.Type] {
			b.t.end() // it came whole
		}
	case "content_block_delta":
		if b == nil || m.Delta == nil {
			meta.poison = "a content_block_delta for no block the stream started"
			return
		}
		if b.stopped || b.t.det.closed {
			e.parts = append(e.parts, part{c: c, kind: partLate}) // after its block's end
			return
		}
		var piece *string
		empty := ""
		fits := false
		switch m.Delta.Type {
		case "text_delta":
			piece, meta.key, fits = m.Delta.Text, "text", b.typ == "text"
		case "thinking_delta":
			piece, meta.key, fits = m.Delta.Thinking, "thinking", b.typ == "thinking"
		case "input_json_delta":
			piece, meta.key, fits = m.Delta.PartialJSON, "partial_json", toolBlocks[b.typ]
		case "signature_delta":
			// Opaque: it goes with the thinking it signs (dropped with it if cut).
			piece, fits = &empty, b.typ == "thinking"
		case "citations_delta":
			// A citation quotes the request's own documents: no text of the model's.
			piece, fits = &empty, b.typ == "text"
		default:
			meta.poison = fmt.Sprintf("content_block_delta events of type %q", m.Delta.Type)
			return
		}
		if !fits {
			meta.poison = fmt.Sprintf("a %s for a %s block", m.Delta.Type, b.typ)
			return
		}
		if stray := msgStray(m.Delta.Type, map[string]*string{"text": m.Delta.Text, "thinking": m.Delta.Thinking, "partial_json": m.Delta.PartialJSON}); stray != "" {
			meta.poison = fmt.Sprintf("a %s that carries %s", m.Delta.Type, stray)
			return
		}
		if piece == nil {
			meta.poison = fmt.Sprintf("a %s without its %s", m.Delta.Type, meta.key)
			return
		}
		start, end := s.add(b.t, *piece)
		e.parts = append(e.parts, part{c: c, kind: partText, t: b.t, start: start, end: end, str: *piece})
	case "content_block_stop":
		if b == nil {
			meta.poison = "a content_block_stop for no block the stream started"
			return
		}
		if b.stopped {
			e.parts = append(e.parts, part{c: c, kind: partLate})
			return
		}
		b.stopped = true
		b.t.end()
		e.parts = append(e.parts, part{c: c, kind: partEnd, t: b.t})
	case "message_delta":
		if m.Usage != nil && m.Usage.OutputTokens != nil {
			w.reported = *m.Usage.OutputTokens
		}
		if m.Delta != nil && m.Delta.StopReason != nil && *m.Delta.StopReason != "" {
			s.finish(c)
			e.parts = append(e.parts, part{c: c, kind: partFinish})
		}
	case "message_stop":
		e.done = true
		if !c.finished {
			s.finish(c)
			e.parts = append(e.parts, part{c: c, kind: partFinish})
		}
	default:
		meta.poison = fmt.Sprintf("events of type %q", m.Type)
	}
}

// unreadable marks e as an event the proxy cannot read: the stream ends there,
// with an error event after what was checked, so every text ends now.
func (w *messagesWire) unreadable(s *streamFilter, e *event) {
	s.finishAll()
	e.parts = e.parts[:0]
	e.barrier = true
}

func (w *messagesWire) write(s *streamFilter, e *event) {
	// One message, one choice: events are written in the order they were read.
	meta := w.metas[w.head]
	w.metas[w.head] = msgMeta{}
	if w.head++; w.head == len(w.metas) {
		w.metas, w.head = w.metas[:0], 0
	}
	if w.ended {
		return // the proxy has ended the message
	}
	c := s.choices[0]
	if meta.poison != "" {
		if c != nil && c.blocked != nil {
			return // a blocked answer ends as it is cut
		}
		s.abort(meta.poison)
		return
	}
	if e.data == nil || len(e.parts) == 0 {
		s.out.Write(e.raw) // a comment, a ping, the upstream's error
		return
	}
	switch {
	case c.final:
		return
	case e.has(c, partLate):
		return // not checked: not sent
	case c.blocked != nil:
		w.writeBlocked(s, e, meta, c)
		return
	case e.has(c, partFinish):
		if cs := shown(s.cite(c)); len(cs) > 0 {
			if obj, err := decodeObject(e.data); err == nil {
				obj["copyleft_matches"] = cs
				w.sent(e, meta)
				writeNamedEvent(&s.out, meta.typ, obj)
				return
			}
		}
	}
	w.sent(e, meta)
	s.out.Write(e.raw)
}

// sent notes what an event that goes to the client opens or ends.
func (w *messagesWire) sent(e *event, meta msgMeta) {
	switch meta.typ {
	case "content_block_start":
		meta.block.open = true
	case "content_block_stop":
		meta.block.open = false
	}
	w.stopSent = w.stopSent || e.done
}

// writeBlocked writes what goes out of an event of a blocked answer read before
// its cut: the blocks before the cut text whole, the cut text block up to the cut,
// nothing of a tool block cut or after the cut, and none of the message's end (the
// proxy writes its own, in final).
func (w *messagesWire) writeBlocked(s *streamFilter, e *event, meta msgMeta, c *choice) {
	b := meta.block
	var p part
	for _, q := range e.parts {
		if q.kind == partText {
			p = q
		}
	}
	switch meta.typ {
	case "message_start":
		s.out.Write(e.raw)
	case "content_block_start", "content_block_delta":
		if !msgShown(c, b.t) {
			return
		}
		keep, lim := c.blocked.keep(p), c.blocked.limits[b.t]
		switch {
		case p.str == "" && meta.typ == "content_block_delta" && p.start >= lim && lim < b.t.n:
			return // a signature or citation past the cut
		case p.str != "" && keep == 0 && meta.typ == "content_block_delta":
			return // all of it past the cut
		case keep < len(p.str) && meta.key != "":
			obj, err := decodeObject(e.data)
			if err != nil {
				return
			}
			container := "delta"
			if meta.typ == "content_block_start" {
				container = "content_block"
			}
			if m, _ := obj[container].(map[string]any); m != nil {
				m[meta.key] = p.str[:keep]
			}
			w.sent(e, meta)
			writeNamedEvent(&s.out, meta.typ, obj)
			return
		case keep < len(p.str):
			return // not reached: tool texts go whole or not at all
		}
		w.sent(e, meta)
		s.out.Write(e.raw)
	case "content_block_stop":
		if b.open {
			w.sent(e, meta)
			s.out.Write(e.raw)
		}
	}
}

// msgShown reports whether anything of block text t of blocked choice c goes out:
// a text before the cut one (a tool text only if it is clean: limits give it
// all), the cut text if something before the cut is left and it is no tool text;
// nothing after.
func msgShown(c *choice, t *text) bool {
	b := c.blocked
	i, j := slices.Index(c.texts, t), slices.Index(c.texts, b.t)
	if i > j {
		return false
	}
	lim := b.limits[t]
	switch {
	case t.tool && t.n > 0:
		return lim >= t.n
	case lim > 0:
		return true
	}
	return t.n == 0 && i < j // an empty block (redacted thinking) before the cut
}

// msgDelta is the message_delta the proxy ends a blocked answer with.
type msgDelta struct {
	Type  string `json:"type"`
	Delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage struct {
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
	Matches []citation `json:"copyleft_matches"`
}

// final ends a blocked answer: the cut block's content_block_stop if it is open,
// then a message_delta with stop_reason "refusal" and the citations, and
// message_stop. "refusal" is the stop_reason the API gives an answer its own
// safety filters stop, which its clients already handle.
func (w *messagesWire) final(s *streamFilter, c *choice) {
	if w.ended {
		return
	}
	for _, b := range w.order {
		if b.open {
			writeNamedEvent(&s.out, "content_block_stop", map[string]any{"type": "content_block_stop", "index": b.index})
			b.open = false
		}
	}
	d := msgDelta{Type: "message_delta", Matches: shown(s.cite(c))}
	d.Delta.StopReason = "refusal"
	// The model's output so far: as the upstream last counted it, or as the proxy
	// did (its tokens are not the model's, but the upstream's count at
	// message_start says nothing of what followed), whichever is more.
	d.Usage.OutputTokens = w.reported
	for _, t := range c.texts {
		d.Usage.OutputTokens = max(d.Usage.OutputTokens, t.detector().outputTokens())
	}
	if d.Matches == nil {
		d.Matches = []citation{}
	}
	writeNamedEvent(&s.out, "message_delta", d)
	writeNamedEvent(&s.out, "message_stop", map[string]any{"type": "message_stop"})
	w.ended, w.stopSent = true, true
}

// stop writes nothing: final has ended the message.
func (w *messagesWire) stop(s *streamFilter) {}

// partial takes a message_stop that lacks only its blank line: it still ends the
// stream.
func (w *messagesWire) partial(s *streamFilter, ev sseEvent) {
	var m struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(bytes.TrimSpace(ev.data), &m) == nil && m.Type == "message_stop" {
		raw := append(bytes.TrimRight(bytes.Clone(ev.raw), "\r\n"), "\n\n"...)
		s.handle(sseEvent{raw: raw, data: bytes.TrimSpace(ev.data)})
	}
}

func (w *messagesWire) complete() bool  { return w.stopSent }
func (w *messagesWire) endMark() string { return "message_stop" }

// errorEvent is the Messages stream's error event, which its clients raise.
func (w *messagesWire) errorEvent(typ, code, message string) []byte {
	var b bytes.Buffer
	writeNamedEvent(&b, "error", anthropicErrorObject(typ, code, "", message))
	return b.Bytes()
}

// writeNamedEvent writes obj as one server-sent event named typ.
func writeNamedEvent(w *bytes.Buffer, typ string, obj any) {
	w.WriteString("event: " + typ + "\ndata: ")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(obj) // ends with "\n"
	w.WriteString("\n")
}

// whole filters a whole message: the upstream's bytes unchanged when nothing is
// cut or cited; else the content cut before the copied run (the cut text block
// truncated, a cut tool block and every block after the cut dropped), stop_reason
// "refusal", and the citations in copyleft_matches.
func (w *messagesWire) whole(f *filter, body []byte) ([]byte, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return body, nil // not a JSON object: nothing the proxy can read, nothing a client can either
	}
	if _, ok := obj["error"]; ok || obj["type"] == "error" {
		f.upstreamErr = "status" // an error in place of a message (any content in it is still read)
	}
	c := f.choice(0)
	var blocks []any
	switch x := obj["content"].(type) {
	case []any:
		blocks = x
	case string: // not the API's shape, but text a client may show
		blocks = []any{map[string]any{"type": "text", "text": x}}
	}
	texts := make([]*text, len(blocks))
	for i, x := range blocks {
		bl, _ := x.(map[string]any)
		if bl == nil {
			continue
		}
		typ, _ := bl["type"].(string)
		text, isText := bl["text"].(string)
		thinking, isThinking := bl["thinking"].(string)
		_, hasText := bl["text"]
		_, hasThinking := bl["thinking"]
		// A block with a text field not of its type is read whole, every string of
		// it, as one of a type the proxy does not know.
		switch {
		case typ == "text" && isText && !hasThinking:
			texts[i] = f.newText(c, kindContent)
			f.add(texts[i], text)
		case typ == "thinking" && isThinking && !hasText:
			texts[i] = f.newText(c, kindProse)
			f.add(texts[i], thinking)
		case typ == "redacted_thinking" && !hasText && !hasThinking:
		case toolBlocks[typ] && !hasText && !hasThinking:
			texts[i] = f.newText(c, kindArgs)
			if enc, err := encodeJSON(bl["input"]); err == nil {
				f.add(texts[i], string(enc))
			}
		default: // a server tool's result, a block newer than the proxy: its strings are read
			texts[i] = f.newText(c, kindArgs)
			if enc, err := encodeJSON(bl); err == nil {
				f.add(texts[i], string(enc))
			}
		}
	}
	f.finish(c)
	f.decide(c)
	c.cited = f.citations(c)
	c.final = true
	cs := shown(c.cited)
	switch {
	case c.blocked != nil:
		kept := cutMessageBlocks(c, blocks, texts)
		if _, ok := obj["content"].(string); ok {
			text := ""
			if len(kept) > 0 {
				text, _ = kept[0].(map[string]any)["text"].(string)
			}
			obj["content"] = text
		} else {
			obj["content"] = kept
		}
		obj["stop_reason"] = "refusal"
		obj["stop_sequence"] = nil
		if cs == nil {
			cs = []citation{}
		}
		obj["copyleft_matches"] = cs
	case len(cs) > 0:
		obj["copyleft_matches"] = cs
	default:
		return body, nil
	}
	return encodeJSON(obj)
}

// cutMessageBlocks returns the blocks of a blocked whole message that go out.
func cutMessageBlocks(c *choice, blocks []any, texts []*text) []any {
	b := c.blocked
	cutAt := slices.Index(texts, b.t)
	kept := []any{}
	for i, x := range blocks {
		t := texts[i]
		if t == nil {
			if i < cutAt {
				kept = append(kept, x) // redacted thinking, or no block at all, before the cut
			}
			continue
		}
		if !msgShown(c, t) {
			continue
		}
		lim := b.limits[t]
		if t.tool || lim >= t.n {
			kept = append(kept, x)
			continue
		}
		bl := x.(map[string]any)
		for _, k := range []string{"text", "thinking"} {
			if s, ok := bl[k].(string); ok {
				bl[k] = s[:min(lim, len(s))]
			}
		}
		delete(bl, "signature") // it signed the whole thinking
		delete(bl, "citations")
		kept = append(kept, bl)
	}
	return kept
}
