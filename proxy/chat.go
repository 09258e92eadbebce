package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// chatWire reads and writes the wire format of chat completions
// (POST .../chat/completions) and legacy completions (POST .../completions): SSE
// "data:" chunks whose choices carry delta.content, delta.tool_calls and text,
// ended by "data: [DONE]".
type chatWire struct {
	legacy   bool       // legacy completions: a choice's text is choices[].text
	template []byte     // the latest chunk, for the fields of chunks the proxy writes
	chunk    chunk      // the chunk being read
	shape    chunkShape // the shape of the chunks before it
	doneSent bool       // a [DONE] has gone to the client
}

// The fields of chat chunks.
const (
	fieldText    partField = iota // choices[].text (legacy completions)
	fieldContent                  // choices[].delta.content
	fieldArgs                     // choices[].delta.tool_calls[].function.arguments
)

func (w *chatWire) read(s *streamFilter, ev sseEvent, e *event) {
	data := bytes.TrimSpace(ev.data)
	switch {
	case ev.data == nil:
		e.barrier = true // a comment or keep-alive
	case string(data) == "[DONE]":
		e.barrier, e.done = true, true
		s.finishAll()
	default:
		c := &w.chunk
		valid := w.shape.read(data, c)
		if !valid || !c.object || !c.isArray || len(c.choices) == 0 {
			e.barrier = true // an error, a usage chunk, something else
			if !valid || !c.object || c.hasError {
				s.upstreamErr = "stream" // an error event, or not a chunk at all
			}
			break
		}
		e.data = data
		w.template = data
		w.parse(s, e, c.choices)
	}
}

// parse reads the choices of a chunk into the filter.
func (w *chatWire) parse(s *streamFilter, e *event, chs []chunkChoice) {
	for i := range chs {
		x := &chs[i]
		if !x.object {
			e.order = append(e.order, nil)
			continue
		}
		c := s.choice(x.index)
		e.order = append(e.order, c)
		e.parts = append(e.parts, part{c: c, kind: partPresence})
		if c.blocked != nil {
			continue // its pieces are dropped
		}
		if c.finished {
			// Nothing may follow a choice's end: what does is not checked, so it
			// does not go out.
			if x.text != "" || x.content != "" || x.tools {
				e.parts = append(e.parts, part{c: c, kind: partLate})
			}
			if x.finish {
				e.parts = append(e.parts, part{c: c, kind: partFinish})
			}
			continue
		}
		if x.text != "" { // legacy completions
			t := s.contentText(c)
			start, end := s.add(t, x.text)
			e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end, field: fieldText, str: x.text})
		}
		if x.content != "" {
			t := s.contentText(c)
			start, end := s.add(t, x.content)
			e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end, field: fieldContent, str: x.content})
		}
		for k, tc := range x.calls {
			if c.tools[tc.index] == nil {
				// A new tool call: the content and the calls before it are complete.
				for _, u := range c.texts {
					u.end()
				}
			}
			t := s.toolText(c, tc.index)
			start, end := s.add(t, tc.args)
			e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end, field: fieldArgs, call: k, str: tc.args})
		}
		if x.finish {
			s.finish(c)
			e.parts = append(e.parts, part{c: c, kind: partFinish})
		}
		s.touch(c)
	}
}

func (w *chatWire) write(s *streamFilter, e *event) {
	w.doneSent = w.doneSent || e.done
	if e.data == nil || !w.changes(s, e) {
		s.out.Write(e.raw)
		return
	}
	obj, err := decodeObject(e.data)
	if err != nil {
		return // not reached: the chunk was read as valid JSON; if it were, it stays out
	}
	w.rewrite(s, e, obj)
	chs, _ := obj["choices"].([]any)
	if len(chs) == 0 && obj["usage"] == nil {
		return // nothing left to say
	}
	writeEvent(&s.out, obj)
}

// changes reports whether the proxy changes e's chunk: a choice in it is cut,
// closed, has spoken after its end, or ends with citations to add.
func (w *chatWire) changes(s *streamFilter, e *event) bool {
	for _, p := range e.parts {
		switch {
		case p.c.final, p.c.blocked != nil, p.kind == partLate:
			return true
		case p.kind == partFinish && len(shown(s.cite(p.c))) > 0:
			return true
		}
	}
	return false
}

// rewrite changes obj, the chunk of e, where a choice in it is cut, closed or
// cited. The choices of obj are those parse read, in the same order.
func (w *chatWire) rewrite(s *streamFilter, e *event, obj map[string]any) {
	chs, _ := obj["choices"].([]any)
	kept := chs[:0]
	for i, x := range chs {
		ch, _ := x.(map[string]any)
		var c *choice
		if i < len(e.order) {
			c = e.order[i]
		}
		if ch == nil || c == nil {
			kept = append(kept, x)
			continue
		}
		switch {
		case c.final:
			continue // the proxy has ended this choice already
		case c.blocked != nil:
			if !cutChunk(e, c, ch) {
				continue
			}
		default:
			if e.has(c, partLate) {
				dropText(ch)
			}
			if e.has(c, partFinish) {
				if cs := shown(s.cite(c)); len(cs) > 0 {
					annotate(ch, cs, false)
				}
			}
		}
		kept = append(kept, ch)
	}
	obj["choices"] = kept
}

// dropText empties the texts a choice object carries.
func dropText(ch map[string]any) {
	if _, ok := ch["text"].(string); ok {
		ch["text"] = ""
	}
	if delta, _ := ch["delta"].(map[string]any); delta != nil {
		if _, ok := delta["content"].(string); ok {
			delta["content"] = ""
		}
		delete(delta, "tool_calls")
	}
}

// cutChunk trims what ch carries for the blocked choice c to what was checked
// before the cut, and reports whether anything of ch is left. Text that parse did
// not read (it came after the cut) goes entirely.
func cutChunk(e *event, c *choice, ch map[string]any) bool {
	ch["finish_reason"] = nil
	delta, _ := ch["delta"].(map[string]any)
	calls, _ := delta["tool_calls"].([]any)
	dropText(ch)
	left := false
	var keptCalls []any
	for _, p := range e.parts {
		if p.c != c || p.kind != partText {
			continue
		}
		keep := c.blocked.keep(p)
		switch p.field {
		case fieldText:
			ch["text"] = p.str[:keep]
			left = left || keep > 0
		case fieldContent:
			delta["content"] = p.str[:keep]
			left = left || keep > 0
		case fieldArgs:
			if p.call >= len(calls) {
				continue
			}
			tc, _ := calls[p.call].(map[string]any)
			if tc == nil || (keep == 0 && p.start >= c.blocked.limits[p.t]) {
				continue
			}
			if fn, _ := tc["function"].(map[string]any); fn != nil {
				fn["arguments"] = p.str[:keep]
			}
			keptCalls = append(keptCalls, tc)
			left = true
		}
	}
	if len(keptCalls) > 0 {
		delta["tool_calls"] = keptCalls
	}
	_, role := delta["role"]
	return left || role
}

// final writes the last chunk of a blocked choice: finish_reason content_filter,
// with the citations.
func (w *chatWire) final(s *streamFilter, c *choice) {
	ch := map[string]any{"index": c.index, "logprobs": nil, "finish_reason": "content_filter"}
	obj := map[string]any{}
	template, _ := decodeObject(w.template)
	for _, k := range []string{"id", "object", "created", "model", "system_fingerprint"} {
		if v, ok := template[k]; ok {
			obj[k] = v
		}
	}
	if w.legacy {
		ch["text"] = ""
	} else {
		ch["delta"] = map[string]any{}
	}
	annotate(ch, s.cite(c), true)
	obj["choices"] = []any{ch}
	writeEvent(&s.out, obj)
}

func (w *chatWire) stop(s *streamFilter) {
	if !w.doneSent {
		s.out.WriteString("data: [DONE]\n\n")
		w.doneSent = true
	}
}

// partial takes a [DONE] that lacks only its blank line: it still ends the stream.
func (w *chatWire) partial(s *streamFilter, ev sseEvent) {
	if string(bytes.TrimSpace(ev.data)) == "[DONE]" {
		s.handle(sseEvent{raw: []byte("data: [DONE]\n\n"), data: []byte("[DONE]")})
	}
}

func (w *chatWire) complete() bool  { return w.doneSent }
func (w *chatWire) endMark() string { return "[DONE]" }

func (w *chatWire) errorEvent(typ, code, message string) []byte {
	return errorEvent(typ, code, message)
}

// decodeWhole decodes a whole response body: one JSON object and nothing after
// it. A body that is anything else (a stream sent as a whole response, two
// objects) is an error: what the proxy cannot read must not pass unchecked.
func decodeWhole(body []byte) (map[string]any, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("the upstream's response is not one JSON object: %w", err)
	}
	return obj, nil
}

// decodeObject decodes one JSON object and nothing after it, numbers kept as
// written.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return obj, nil
}
