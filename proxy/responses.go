package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"cleanroom/fingerprint"
)

// The OpenAI Responses API (POST .../responses): one answer made of output items
// (messages, reasoning, function calls, custom tool calls, ...), streamed as
// semantic server-sent events ("event: response.output_text.delta" with a JSON
// "data" whose sequence_numbers count up from 0), with no [DONE]: the stream ends
// with response.completed, response.incomplete or response.failed, whose response
// object repeats every item whole.
//
// Every text the model writes is read: output_text and refusal parts, reasoning
// summaries and reasoning text, function call arguments (the strings of their
// JSON), custom tool call input (freeform text such as a patch), code interpreter
// code and MCP call arguments. The events that repeat a text whole (*.done,
// content_part.done, output_item.done, the final response) go out only with the
// text that was checked: one that differs from the deltas is rewritten. An item
// type or a delta event the proxy does not know ends the response with an error:
// what it does not understand must not pass unchecked.
var responsesFormat = &format{
	name:      endpointResponses,
	suffix:    "/responses",
	parse:     parseResponsesRequest,
	newWire:   func(*request) wire { return newResponsesWire() },
	errorBody: openAIError,
}

const endpointResponses = "responses"

func init() { formats = append(formats, responsesFormat) }

// parseResponsesRequest reads a Responses request: its input (a string, or items
// whose texts are all the request sends) and instructions are context and echo.
func parseResponsesRequest(body []byte) (*request, error) {
	raw, err := decodeRequest(body)
	if err != nil {
		return nil, err
	}
	r := &request{endpoint: endpointResponses, n: 1, lang: fingerprint.Markdown}
	if err := field(raw, "model", &r.model); err != nil {
		return nil, err
	}
	if err := field(raw, "stream", &r.stream); err != nil {
		return nil, err
	}
	var background bool
	if err := field(raw, "background", &background); err != nil {
		return nil, err
	}
	if background {
		// The answer would be fetched later from the upstream, past the proxy.
		return nil, badf("background", "background responses are not supported: cleanroom checks a response as it is made, so ask for it in the foreground (streamed or not)")
	}
	var instructions string
	if err := field(raw, "instructions", &instructions); err != nil {
		return nil, err
	}
	if instructions != "" {
		r.sent = append(r.sent, instructions)
	}
	in := raw["input"]
	if len(in) == 0 || string(in) == "null" {
		return r, nil
	}
	var s string
	if json.Unmarshal(in, &s) == nil {
		r.sent = append(r.sent, s)
		r.context = tail(s)
		return r, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(in, &items); err != nil {
		return nil, badf("input", "input must be a string or an array of input items")
	}
	last := ""
	for i, it := range items {
		var item struct {
			Type    string          `json:"type"`
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(it, &item); err != nil {
			return nil, badf(fmt.Sprintf("input[%d]", i), "input[%d] must be an object: %v", i, err)
		}
		texts := itemTexts(it)
		r.sent = append(r.sent, texts...)
		if item.Role == "user" && (item.Type == "" || item.Type == "message") {
			last = strings.Join(texts, "\n")
		}
	}
	r.context = tail(last)
	return r, nil
}

// itemTexts returns the strings of an input item that carry text: text,
// arguments, input, output, code, wherever they are in it.
func itemTexts(b json.RawMessage) []string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch x := v.(type) {
		case string:
			switch key {
			case "text", "arguments", "input", "output", "code", "content", "refusal":
				if x != "" {
					out = append(out, x)
				}
			}
		case []any:
			for _, e := range x {
				walk(e, key)
			}
		case map[string]any:
			for k, e := range x {
				walk(e, k)
			}
		}
	}
	walk(v, "")
	return out
}

// Item types whose content the proxy reads, by the kind of their text, and those
// that carry no text the model writes (searches, images, computer actions,
// approvals).
var (
	responsesToolItems = map[string]textKind{
		"function_call":         kindArgs,
		"custom_tool_call":      kindInput,
		"code_interpreter_call": kindInput,
		"mcp_call":              kindArgs,
	}
	responsesQuietItems = map[string]bool{
		"web_search_call": true, "file_search_call": true, "image_generation_call": true,
		"computer_call": true, "mcp_list_tools": true, "mcp_approval_request": true,
	}
)

// The text field of each item type's text, in the item object (tool items) and in
// its *.done event.
var responsesToolField = map[string]string{
	"function_call": "arguments", "custom_tool_call": "input", "code_interpreter_call": "code", "mcp_call": "arguments",
}

// respItem is one output item of a response, as the wire follows it.
type respItem struct {
	index int
	typ   string
	obj   map[string]any // as added (output_item.added), for the items the proxy writes
	tool  *respText      // a tool item's input
	parts map[int]*respText
	order []*respText // every text of the item, in order of appearance
	// sentAdded and sentDone say whether its output_item.added and .done went out.
	sentAdded, sentDone bool
	done                map[string]any // the item as its output_item.done went out
}

// respText is one text of an item: a content part, a reasoning summary or text, a
// tool's input. sent is what the client got of it.
type respText struct {
	t       *text
	item    *respItem
	key     int    // content_index or summary_index
	reason  string // "summary" or "content" for reasoning texts
	refusal bool
	sent    strings.Builder
	ended   bool // its *.done arrived: nothing may follow
	// annotated says its url_citation annotations went out; anns are they.
	annotated bool
	anns      []any
}

// responsesWire reads and writes one Responses stream.
type responsesWire struct {
	items    map[int]*respItem
	texts    map[*text]*respText
	metas    []respMeta // what read learned of the events write has yet to write, from head on
	head     int
	template map[string]any // the response object of response.created
	seq      int64          // the next sequence_number the client gets
	seqSet   bool
	cutDone  bool // a blocked response has reached its cut: the rest is dropped
	ended    bool // the final response event went out
}

// respMeta is what read learned of an event, for write.
type respMeta struct {
	typ    string
	seq    int64
	hasSeq bool
	item   *respItem
	text   *respText
	poison string // why the proxy cannot pass this event, if it cannot
}

func newResponsesWire() *responsesWire {
	return &responsesWire{items: map[int]*respItem{}, texts: map[*text]*respText{}}
}

// respEvent is what read decodes of an event's JSON (see jsonscan.go).
type respEvent struct {
	Type                                    string
	Seq                                     int
	HasSeq                                  bool
	OutputIndex, ContentIndex, SummaryIndex int
	Delta                                   string
	HasDelta                                bool // a string delta
	DeltaAny                                bool // a delta of any type
	ItemType                                string
	HasItem                                 bool
	Response                                []byte
}

// respTypes are the event types the wire knows, so that reading one allocates
// nothing.
var respTypes = map[string]string{}

func init() {
	for _, t := range []string{"response.created", "response.in_progress", "response.queued", "response.output_item.added",
		"response.output_item.done", "response.content_part.added", "response.content_part.done", "response.output_text.delta",
		"response.output_text.done", "response.refusal.delta", "response.refusal.done", "response.reasoning_summary_part.added",
		"response.reasoning_summary_part.done", "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
		"response.reasoning_text.delta", "response.reasoning_text.done", "response.function_call_arguments.delta",
		"response.function_call_arguments.done", "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
		"response.completed", "response.incomplete", "response.failed", "error"} {
		respTypes[t] = t
	}
}

// decodeRespEvent reads an event's JSON into m by exact keys; it returns what is
// wrong with it, or "".
func decodeRespEvent(data []byte, m *respEvent) string {
	bad := ""
	r := jsonReader{b: data}
	if r.peek() != '{' {
		return "not a JSON object"
	}
	hasType := false
	r.object(func(key []byte) {
		switch string(key) {
		case "type":
			if r.peek() != '"' {
				r.skip()
				bad = "type is not a string"
				return
			}
			b, _ := r.str(false)
			t, ok := respTypes[string(b)]
			if !ok {
				t = string(b)
			}
			m.Type, hasType = t, t != ""
		case "sequence_number", "output_index", "content_index", "summary_index":
			if c := r.peek(); c == 'n' {
				r.skip()
				return
			} else if c != '-' && (c < '0' || c > '9') {
				r.skip()
				bad = string(key) + " is not an integer"
				return
			}
			n, err := strconv.Atoi(string(r.number()))
			if err != nil {
				bad = string(key) + " is not an integer"
				return
			}
			switch string(key) {
			case "sequence_number":
				m.Seq, m.HasSeq = n, true
			case "output_index":
				m.OutputIndex = n
			case "content_index":
				m.ContentIndex = n
			default:
				m.SummaryIndex = n
			}
		case "delta":
			m.DeltaAny, m.HasDelta = r.peek() != 'n', false
			if r.peek() != '"' {
				r.skip()
				return
			}
			b, _ := r.str(false)
			m.Delta, m.HasDelta = string(b), true
		case "item":
			m.HasItem, m.ItemType = false, ""
			if r.peek() != '{' {
				r.skip()
				bad = "item is not an object"
				return
			}
			r.object(func(k []byte) {
				if string(k) != "type" || r.peek() != '"' {
					r.skip()
					return
				}
				b, _ := r.str(false)
				m.ItemType = string(b)
			})
			m.HasItem = true
		case "response":
			m.Response = r.raw()
		default:
			r.skip()
		}
	})
	r.ws()
	switch {
	case r.bad || r.i != len(r.b):
		return "not valid JSON"
	case bad != "":
		return bad
	case !hasType:
		return "an event without a type"
	}
	return ""
}

func (w *responsesWire) read(s *streamFilter, ev sseEvent, e *event) {
	var meta respMeta
	// One answer, one choice: the events are written in the order they are read,
	// and what read learned of each waits in a queue for write.
	defer func() { w.metas = append(w.metas, meta) }()
	data := bytes.TrimSpace(ev.data)
	if ev.data == nil {
		e.barrier = true // a comment or keep-alive
		return
	}
	e.data = data
	var m respEvent
	if bad := decodeRespEvent(data, &m); bad != "" {
		// Not an event of the API: a client might still read something in it.
		e.barrier = true
		s.upstreamErr = "stream"
		meta.poison = "an event it cannot read (" + bad + ")"
		return
	}
	meta.typ = m.Type
	if m.HasSeq {
		meta.seq, meta.hasSeq = int64(m.Seq), true
		if !w.seqSet {
			w.seq, w.seqSet = int64(m.Seq), true
		}
	}
	c := s.choice(0)
	e.parts = append(e.parts, part{c: c, kind: partPresence})
	if c.blocked != nil {
		return // its pieces are dropped
	}
	if c.finished {
		if m.Type != "error" {
			e.parts = append(e.parts, part{c: c, kind: partLate})
		}
		return
	}
	defer s.touch(c)
	it := w.items[m.OutputIndex]
	switch m.Type {
	case "error":
		e.parts = e.parts[:0]
		e.barrier = true
		s.upstreamErr = "stream"
	case "response.created", "response.in_progress", "response.queued":
		if obj, err := decodeObject(m.Response); err == nil {
			w.template = obj
		}
	case "response.output_item.added":
		if !m.HasItem {
			meta.poison = "an output_item.added event without an item"
			return
		}
		for _, u := range c.texts {
			u.end() // the items before it are complete
		}
		it = &respItem{index: m.OutputIndex, typ: m.ItemType, parts: map[int]*respText{}}
		if full, err := decodeObject(data); err == nil {
			it.obj, _ = full["item"].(map[string]any)
		}
		w.items[m.OutputIndex] = it
		meta.item = it
		if k, ok := responsesToolItems[it.typ]; ok {
			rt := w.newText(s, c, it, k, 0)
			it.tool = rt
			// The call's first event waits with the call: it goes out whole or not at all.
			e.parts = append(e.parts, part{c: c, kind: partText, t: rt.t})
			meta.text = rt
			return
		}
		if it.typ != "message" && it.typ != "reasoning" && !responsesQuietItems[it.typ] {
			meta.poison = fmt.Sprintf("output items of type %q", it.typ)
		}
	case "response.content_part.added", "response.reasoning_summary_part.added":
		meta.item = it
	case "response.output_text.delta", "response.refusal.delta", "response.reasoning_summary_text.delta",
		"response.reasoning_text.delta", "response.function_call_arguments.delta", "response.custom_tool_call_input.delta",
		"response.code_interpreter_call_code.delta", "response.mcp_call_arguments.delta":
		if it == nil || !m.HasDelta {
			meta.poison = m.Type + " for no item the stream opened, or without a text delta"
			return
		}
		delta := m.Delta
		rt := w.textOf(s, c, it, &m)
		meta.item, meta.text = it, rt
		if rt.ended {
			e.parts = append(e.parts, part{c: c, kind: partLate})
			return
		}
		start, end := s.add(rt.t, delta)
		e.parts = append(e.parts, part{c: c, kind: partText, t: rt.t, start: start, end: end, str: delta})
	case "response.output_text.done", "response.refusal.done", "response.reasoning_summary_text.done",
		"response.reasoning_text.done", "response.content_part.done", "response.reasoning_summary_part.done",
		"response.function_call_arguments.done", "response.custom_tool_call_input.done",
		"response.code_interpreter_call_code.done", "response.mcp_call_arguments.done":
		if it == nil {
			meta.poison = m.Type + " for no item the stream opened"
			return
		}
		rt := w.textOf(s, c, it, &m)
		meta.item, meta.text = it, rt
		rt.t.end()
		e.parts = append(e.parts, part{c: c, kind: partEnd, t: rt.t})
	case "response.output_item.done":
		if it == nil {
			meta.poison = m.Type + " for no item the stream opened"
			return
		}
		meta.item = it
		for _, rt := range it.order {
			rt.t.end()
			rt.ended = true
			e.parts = append(e.parts, part{c: c, kind: partEnd, t: rt.t})
		}
	case "response.completed", "response.incomplete", "response.failed":
		s.finish(c)
		e.done = true
		e.parts = append(e.parts, part{c: c, kind: partFinish})
	default:
		if m.DeltaAny {
			// Text of a kind the proxy does not know.
			meta.poison = fmt.Sprintf("events of type %q", m.Type)
		}
		meta.item = it
	}
}

// newText adds a text of kind k to item it.
func (w *responsesWire) newText(s *streamFilter, c *choice, it *respItem, k textKind, key int) *respText {
	rt := &respText{t: s.newText(c, k), item: it, key: key}
	w.texts[rt.t] = rt
	it.order = append(it.order, rt)
	return rt
}

// textOf returns the text an event of item it is about.
func (w *responsesWire) textOf(s *streamFilter, c *choice, it *respItem, m *respEvent) *respText {
	if it.tool != nil {
		return it.tool
	}
	key, kind, reason := m.ContentIndex, kindContent, ""
	switch {
	case strings.HasPrefix(m.Type, "response.reasoning_summary"):
		key, kind, reason = 1<<20+m.SummaryIndex, kindProse, "summary"
	case strings.HasPrefix(m.Type, "response.reasoning_text"):
		kind, reason = kindProse, "content"
	}
	rt := it.parts[key]
	if rt == nil {
		for _, u := range c.texts {
			u.end() // a new part: the texts before it are complete
		}
		rt = w.newText(s, c, it, kind, key)
		rt.reason = reason
		rt.refusal = strings.HasPrefix(m.Type, "response.refusal")
		it.parts[key] = rt
		if reason == "summary" {
			rt.key = m.SummaryIndex
		}
	}
	return rt
}

func (w *responsesWire) write(s *streamFilter, e *event) {
	meta := w.metas[w.head]
	w.metas[w.head] = respMeta{}
	if w.head++; w.head == len(w.metas) {
		w.metas, w.head = w.metas[:0], 0
	}
	if w.ended {
		return
	}
	if e.data == nil {
		s.out.Write(e.raw) // a comment, or what is not an event of the API
		return
	}
	c := s.choice(0)
	if meta.poison != "" && c.blocked == nil && !c.final {
		s.abort(meta.poison)
		return
	}
	switch {
	case c.final:
		return // the proxy has ended the response
	case c.blocked != nil:
		w.writeBlocked(s, e, meta, c)
		return
	case e.has(c, partLate):
		return // after its end: not checked, not sent
	}
	w.writeChecked(s, e, meta)
}

// writeChecked writes an event all of whose text is checked and passes.
func (w *responsesWire) writeChecked(s *streamFilter, e *event, meta respMeta) {
	for _, p := range e.parts {
		if p.kind == partText {
			w.texts[p.t].sent.WriteString(p.str)
		}
	}
	if meta.item != nil && meta.typ == "response.output_item.added" {
		meta.item.sentAdded = true
	}
	switch {
	case meta.typ == "response.output_text.done" || meta.typ == "response.refusal.done" ||
		strings.HasSuffix(meta.typ, "_text.done") || strings.HasSuffix(meta.typ, "_arguments.done") ||
		strings.HasSuffix(meta.typ, "_input.done") || strings.HasSuffix(meta.typ, "_code.done"):
		w.annotationEvents(s, meta.text)
		w.writeFixed(s, e, meta, w.sentOf(meta.text), false, func(obj map[string]any) bool { return w.fixTextDone(obj, meta) })
	case meta.typ == "response.content_part.done" || meta.typ == "response.reasoning_summary_part.done":
		w.annotationEvents(s, meta.text)
		w.writeFixed(s, e, meta, w.sentOf(meta.text), meta.text != nil && len(meta.text.anns) > 0, func(obj map[string]any) bool {
			part, _ := obj["part"].(map[string]any)
			return w.fixPart(part, meta.text)
		})
	case meta.typ == "response.output_item.done":
		annotated := false
		for _, rt := range meta.item.order {
			w.annotationEvents(s, rt)
			annotated = annotated || len(rt.anns) > 0
		}
		meta.item.sentDone = true
		w.writeFixed(s, e, meta, w.sentOf(meta.item.order...), annotated, func(obj map[string]any) bool {
			item, _ := obj["item"].(map[string]any)
			meta.item.done = item
			return w.fixItem(item, meta.item)
		})
	case e.done:
		w.ended = true
		var all []*respText
		annotated := len(shown(s.cite(s.choice(0)))) > 0
		for _, it := range w.sortedItems() {
			if it.sentAdded {
				all = append(all, it.order...)
			}
		}
		w.writeFixed(s, e, meta, w.sentOf(all...), annotated, func(obj map[string]any) bool {
			resp, _ := obj["response"].(map[string]any)
			return w.fixResponse(s, resp)
		})
	default:
		w.writeSeq(s, e, meta)
	}
}

// sentOf returns what the client got of each of texts.
func (w *responsesWire) sentOf(texts ...*respText) []string {
	var out []string
	for _, rt := range texts {
		if rt != nil {
			out = append(out, rt.sent.String())
		}
	}
	return out
}

// writeSeq writes an event as it came, or renumbered when the events before it
// changed in number.
func (w *responsesWire) writeSeq(s *streamFilter, e *event, meta respMeta) {
	if !meta.hasSeq || meta.seq == w.seq {
		s.out.Write(e.raw)
		w.seq++
		return
	}
	obj, err := decodeObject(e.data)
	if err != nil {
		return
	}
	w.emit(s, obj)
}

// writeFixed writes an event that repeats text: as it came if it holds only the
// texts sent (and there is nothing to add to it), else as fix changes it.
func (w *responsesWire) writeFixed(s *streamFilter, e *event, meta respMeta, sent []string, add bool, fix func(map[string]any) bool) {
	if !add && sameTexts(e.data, sent) {
		w.writeSeq(s, e, meta)
		return
	}
	obj, err := decodeObject(e.data)
	if err != nil {
		return
	}
	if !fix(obj) {
		w.writeSeq(s, e, meta)
		return
	}
	w.emit(s, obj)
}

// emit writes an event the proxy made or changed, with the next sequence number.
func (w *responsesWire) emit(s *streamFilter, obj map[string]any) {
	if _, ok := obj["sequence_number"]; ok || w.seqSet {
		obj["sequence_number"] = w.seq
	}
	w.seq++
	typ, _ := obj["type"].(string)
	s.out.WriteString("event: " + typ + "\n")
	writeEvent(&s.out, obj)
}

// writeBlocked writes an event of a response that is cut: what came before the
// cut as it came, the piece the cut falls in trimmed, nothing after.
func (w *responsesWire) writeBlocked(s *streamFilter, e *event, meta respMeta, c *choice) {
	if w.cutDone {
		return
	}
	b := c.blocked
	for _, p := range e.parts {
		if p.kind != partText && p.kind != partEnd {
			continue
		}
		limit, ok := b.limits[p.t]
		if !ok || p.kind == partEnd && limit < p.t.n || p.kind == partText && p.end > limit || p.t.tool && limit == 0 {
			// The cut is here: a piece of it goes out if it holds checked text.
			w.cutDone = true
			if keep := b.keep(p); p.kind == partText && keep > 0 && !p.t.tool {
				obj, err := decodeObject(e.data)
				if err != nil {
					return
				}
				obj["delta"] = p.str[:keep]
				w.texts[p.t].sent.WriteString(p.str[:keep])
				w.emit(s, obj)
			}
			return
		}
	}
	if meta.poison != "" {
		w.cutDone = true
		return
	}
	if e.done {
		return // the proxy writes the end of the response itself
	}
	w.writeChecked(s, e, meta)
}

// final ends a cut response: the open texts and items end with what was sent,
// and response.incomplete says why, with the citations.
func (w *responsesWire) final(s *streamFilter, c *choice) {
	cited := s.cite(c)
	for _, it := range w.sortedItems() {
		if !it.sentAdded || it.sentDone {
			continue
		}
		for _, rt := range it.order {
			if rt.ended || rt.t.tool {
				continue
			}
			w.endText(s, rt)
		}
		item := w.itemObject(it, "incomplete")
		w.emit(s, map[string]any{"type": "response.output_item.done", "output_index": it.index, "item": item})
		it.sentDone = true
	}
	resp := w.responseObject(s, "incomplete")
	resp["incomplete_details"] = map[string]any{"reason": "content_filter"}
	resp["copyleft_matches"] = shown(cited)
	w.emit(s, map[string]any{"type": "response.incomplete", "response": resp})
	w.ended = true
}

// endText writes the *.done events of a text cut short, with what was sent.
func (w *responsesWire) endText(s *streamFilter, rt *respText) {
	it := rt.item
	id, _ := it.obj["id"].(string)
	sent := rt.sent.String()
	switch rt.reason {
	case "summary":
		w.emit(s, map[string]any{"type": "response.reasoning_summary_text.done", "item_id": id, "output_index": it.index,
			"summary_index": rt.key, "text": sent})
		w.emit(s, map[string]any{"type": "response.reasoning_summary_part.done", "item_id": id, "output_index": it.index,
			"summary_index": rt.key, "part": map[string]any{"type": "summary_text", "text": sent}})
	case "content":
		w.emit(s, map[string]any{"type": "response.reasoning_text.done", "item_id": id, "output_index": it.index,
			"content_index": rt.key, "text": sent})
	default:
		w.annotationEvents(s, rt)
		if rt.refusal {
			w.emit(s, map[string]any{"type": "response.refusal.done", "item_id": id, "output_index": it.index,
				"content_index": rt.key, "refusal": sent})
		} else {
			w.emit(s, map[string]any{"type": "response.output_text.done", "item_id": id, "output_index": it.index,
				"content_index": rt.key, "text": sent, "logprobs": []any{}})
		}
		w.emit(s, map[string]any{"type": "response.content_part.done", "item_id": id, "output_index": it.index,
			"content_index": rt.key, "part": w.partObject(rt)})
	}
	rt.ended = true
}

func (w *responsesWire) stop(s *streamFilter)                 {}
func (w *responsesWire) partial(s *streamFilter, ev sseEvent) {}
func (w *responsesWire) complete() bool                       { return w.ended }
func (w *responsesWire) endMark() string                      { return "response.completed" }

// errorEvent is the Responses stream's error event.
func (w *responsesWire) errorEvent(typ, code, message string) []byte {
	obj := map[string]any{"type": "error", "code": code, "message": message, "param": nil}
	if w.seqSet {
		obj["sequence_number"] = w.seq
		w.seq++
	}
	var b bytes.Buffer
	b.WriteString("event: error\n")
	writeEvent(&b, obj)
	return b.Bytes()
}

// annotationEvents writes, once, the url_citation annotations of a text that
// ends: response.output_text.annotation.added, one per citation shown.
func (w *responsesWire) annotationEvents(s *streamFilter, rt *respText) {
	if rt == nil || rt.annotated || rt.reason != "" || rt.refusal || rt.t.tool {
		return
	}
	rt.annotated = true
	id, _ := rt.item.obj["id"].(string)
	rt.anns = w.annotations(s.filter, rt)
	for i, a := range rt.anns {
		w.emit(s, map[string]any{"type": "response.output_text.annotation.added", "item_id": id,
			"output_index": rt.item.index, "content_index": rt.key, "annotation_index": i, "annotation": a})
	}
}

// annotations returns the url_citation annotations of a text: one per citation
// shown, over the characters of the match that the client got.
func (w *responsesWire) annotations(f *filter, rt *respText) []any {
	var out []any
	sent := rt.sent.String()
	for _, ct := range shown(f.textCitations(rt.t)) {
		start, end := min(ct.start, len(sent)), min(ct.end, len(sent))
		out = append(out, urlCitation(ct, utf8.RuneCountInString(sent[:start]), utf8.RuneCountInString(sent[:end])))
	}
	return out
}

// urlCitation is a citation as the Responses API annotates output text: a
// url_citation whose title names the source and its license.
func urlCitation(ct citation, start, end int) map[string]any {
	return map[string]any{"type": "url_citation", "url": ct.URL, "start_index": start, "end_index": end,
		"title": fmt.Sprintf("%s %s lines %d-%d (%s)", ct.Repo, ct.Path, ct.StartLine, ct.EndLine, ct.License)}
}

// fixTextDone makes a *.done event carry the text sent; it reports a change.
func (w *responsesWire) fixTextDone(obj map[string]any, meta respMeta) bool {
	rt := meta.text
	if rt == nil {
		return false
	}
	key := "text"
	switch {
	case rt.t.tool:
		key = responsesToolField[rt.item.typ]
	case rt.refusal:
		key = "refusal"
	}
	return setString(obj, key, rt.sent.String())
}

// fixPart makes a content part carry the text sent, with its annotations.
func (w *responsesWire) fixPart(part map[string]any, rt *respText) bool {
	if part == nil || rt == nil {
		return false
	}
	key := "text"
	if rt.refusal {
		key = "refusal"
	}
	changed := setString(part, key, rt.sent.String())
	if len(rt.anns) > 0 {
		old, _ := part["annotations"].([]any)
		part["annotations"] = append(old, rt.anns...)
		changed = true
	}
	return changed
}

// setString sets obj[key] to v and reports whether it changed.
func setString(obj map[string]any, key, v string) bool {
	if old, ok := obj[key].(string); ok && old == v {
		return false
	}
	obj[key] = v
	return true
}

// fixItem makes an item object carry the texts sent; it reports a change.
func (w *responsesWire) fixItem(item map[string]any, it *respItem) bool {
	if item == nil {
		return false
	}
	changed := false
	switch {
	case it.tool != nil:
		changed = setString(item, responsesToolField[it.typ], it.tool.sent.String())
	case it.typ == "message":
		parts, _ := item["content"].([]any)
		for i, x := range parts {
			part, _ := x.(map[string]any)
			if rt := it.parts[i]; rt != nil {
				changed = w.fixPart(part, rt) || changed
			} else if part != nil {
				changed = setString(part, "text", "") || changed // no delta carried it: unchecked
			}
		}
	case it.typ == "reasoning":
		for _, list := range []struct {
			key  string
			base int
		}{{"summary", 1 << 20}, {"content", 0}} {
			parts, _ := item[list.key].([]any)
			for i, x := range parts {
				if part, _ := x.(map[string]any); part != nil {
					sent := ""
					if rt := it.parts[list.base+i]; rt != nil {
						sent = rt.sent.String()
					}
					changed = setString(part, "text", sent) || changed
				}
			}
		}
	}
	return changed
}

// fixResponse makes a final response object carry the items and texts sent and
// the citations; it reports a change.
func (w *responsesWire) fixResponse(s *streamFilter, resp map[string]any) bool {
	if resp == nil {
		return false
	}
	changed := false
	out, _ := resp["output"].([]any)
	kept := out[:0]
	for j, x := range out {
		item, _ := x.(map[string]any)
		it := w.items[j]
		if it == nil || !it.sentAdded || item == nil {
			changed = true // an item no event carried: unchecked, not sent
			continue
		}
		changed = w.fixItem(item, it) || changed
		kept = append(kept, item)
	}
	resp["output"] = kept
	if cs := shown(s.cite(s.choice(0))); len(cs) > 0 {
		resp["copyleft_matches"] = cs
		changed = true
	}
	return changed
}

// sortedItems returns the items in output order.
func (w *responsesWire) sortedItems() []*respItem {
	out := make([]*respItem, 0, len(w.items))
	for _, it := range w.items {
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b *respItem) int { return a.index - b.index })
	return out
}

// partObject is a content part as sent.
func (w *responsesWire) partObject(rt *respText) map[string]any {
	if rt.refusal {
		return map[string]any{"type": "refusal", "refusal": rt.sent.String()}
	}
	anns := rt.anns
	if anns == nil {
		anns = []any{}
	}
	return map[string]any{"type": "output_text", "text": rt.sent.String(), "annotations": anns, "logprobs": []any{}}
}

// itemObject is an item as sent, ended with status.
func (w *responsesWire) itemObject(it *respItem, status string) map[string]any {
	if it.done != nil {
		return it.done
	}
	item := map[string]any{}
	for k, v := range it.obj {
		item[k] = v
	}
	if _, ok := item["status"]; ok || it.typ == "message" {
		item["status"] = status
	}
	switch {
	case it.tool != nil:
		item[responsesToolField[it.typ]] = it.tool.sent.String()
	case it.typ == "message":
		parts := []any{}
		for _, rt := range it.order {
			parts = append(parts, w.partObject(rt))
		}
		item["content"] = parts
	case it.typ == "reasoning":
		summary := []any{}
		for _, rt := range it.order {
			if rt.reason == "summary" {
				summary = append(summary, map[string]any{"type": "summary_text", "text": rt.sent.String()})
			}
		}
		item["summary"] = summary
	}
	return item
}

// responseObject is the response as sent, with status.
func (w *responsesWire) responseObject(s *streamFilter, status string) map[string]any {
	resp := map[string]any{}
	for k, v := range w.template {
		resp[k] = v
	}
	resp["status"] = status
	output := []any{}
	for _, it := range w.sortedItems() {
		if it.sentAdded {
			output = append(output, w.itemObject(it, "incomplete"))
		}
	}
	resp["output"] = output
	return resp
}
