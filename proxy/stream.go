package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// streamFilter is the body of a filtered streamed response. It reads the upstream's
// events as they come and passes each on once every text it carries has been
// checked: byte for byte as it came, unless a choice is cut in it. With no action
// that blocks, nothing is held back and only the last chunk of a choice with a
// match changes, to carry the citation.
type streamFilter struct {
	*filter
	up       io.ReadCloser
	sse      sseReader
	buf      []byte
	out      bytes.Buffer
	queue    []*event
	template map[string]any // the latest chunk, for the fields of chunks the proxy writes
	doneSent bool           // a [DONE] has gone to the client
	ended    bool
	closed   bool
	onEnd    func(f *streamFilter, err error) // called once, when the stream ends
	endErr   error
}

// An event is one upstream event waiting to go out.
type event struct {
	raw     []byte
	obj     map[string]any // a parsed chunk; nil for anything else
	parts   []part
	barrier bool // carries no choice: waits for every event before it
	done    bool // the upstream's [DONE]
	arrived time.Time
}

// A part is what an event carries for one choice.
type part struct {
	c          *choice
	kind       partKind
	t          *text
	start, end int // bytes of t
}

type partKind uint8

const (
	partPresence partKind = iota // the choice appears (a role, an empty delta)
	partText                     // a piece of one of its texts
	partFinish                   // its finish_reason
)

func newStreamFilter(f *filter, up io.ReadCloser, maxEvent int, onEnd func(*streamFilter, error)) *streamFilter {
	return &streamFilter{filter: f, up: up, buf: make([]byte, 32<<10), sse: sseReader{maxSize: maxEvent}, onEnd: onEnd}
}

// Read implements io.Reader for the ReverseProxy that copies the body to the client.
func (s *streamFilter) Read(p []byte) (int, error) {
	for s.out.Len() == 0 {
		if s.ended {
			return 0, io.EOF
		}
		n, err := s.up.Read(s.buf)
		if n > 0 {
			if ferr := s.sse.feed(s.buf[:n], s.handle); ferr != nil {
				s.fail(ferr)
				break
			}
		}
		if err != nil {
			s.upstreamEnded(err)
			break
		}
		s.release()
	}
	return s.out.Read(p)
}

// Close closes the upstream body.
func (s *streamFilter) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.ended {
		s.end(errClientGone)
	}
	return s.up.Close()
}

var errClientGone = errors.New("client went away")

// handle takes one upstream event.
func (s *streamFilter) handle(ev sseEvent) error {
	e := &event{raw: ev.raw, arrived: time.Now()}
	data := bytes.TrimSpace(ev.data)
	switch {
	case ev.data == nil:
		e.barrier = true // a comment or keep-alive
	case string(data) == "[DONE]":
		e.barrier, e.done = true, true
		s.finishAll()
	default:
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var obj map[string]any
		chs, ok := []any(nil), false
		if dec.Decode(&obj) == nil {
			chs, ok = obj["choices"].([]any)
		}
		if !ok || len(chs) == 0 {
			e.barrier = true // an error, a usage chunk, something else
			if _, isErr := obj["error"]; isErr || obj == nil {
				s.upstreamErr = "stream" // an error event, or not a chunk at all
			}
			break
		}
		e.obj = obj
		s.template = obj
		s.parse(e, chs)
	}
	s.queue = append(s.queue, e)
	return nil
}

// parse reads the choices of a chunk into the filter.
func (s *streamFilter) parse(e *event, chs []any) {
	for _, x := range chs {
		ch, _ := x.(map[string]any)
		if ch == nil {
			continue
		}
		c := s.choice(toInt(ch["index"]))
		e.parts = append(e.parts, part{c: c, kind: partPresence})
		if c.blocked != nil || c.finished {
			continue // its pieces will be dropped
		}
		delta, _ := ch["delta"].(map[string]any)
		if str, ok := ch["text"].(string); ok && str != "" { // legacy completions
			t := s.contentText(c)
			start, end := s.add(t, str)
			e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end})
		}
		if str, ok := delta["content"].(string); ok && str != "" {
			t := s.contentText(c)
			start, end := s.add(t, str)
			e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end})
		}
		calls, _ := delta["tool_calls"].([]any)
		for _, y := range calls {
			tc, _ := y.(map[string]any)
			fn, _ := tc["function"].(map[string]any)
			args, _ := fn["arguments"].(string)
			j := toInt(tc["index"])
			if c.tools[j] == nil {
				// A new tool call: the content and the calls before it are complete.
				for _, u := range c.texts {
					u.det.close()
				}
			}
			t := s.toolText(c, j)
			start, end := s.add(t, args)
			e.parts = append(e.parts, part{c: c, kind: partText, t: t, start: start, end: end})
		}
		if fr, ok := ch["finish_reason"]; ok && fr != nil {
			s.finish(c)
			e.parts = append(e.parts, part{c: c, kind: partFinish})
		}
		s.decide(c)
	}
}

// finishAll ends every choice: the stream is over.
func (s *streamFilter) finishAll() {
	for _, c := range s.choices {
		s.finish(c)
		s.decide(c)
	}
}

// ready reports whether p may go to the client: at once when nothing can be
// blocked, else once it is checked.
func (s *streamFilter) ready(p part) bool {
	if !s.hold || p.c.blocked != nil || p.kind == partPresence {
		return true
	}
	if p.kind == partFinish {
		for _, t := range p.c.texts {
			if t.safe() < t.n {
				return false
			}
		}
		return true
	}
	if p.t.args != nil && !p.t.det.closed {
		return false // a tool call goes out whole, once checked whole
	}
	return p.end <= p.t.safe()
}

// release writes every event that may go: one whose parts are all checked, with no
// earlier event of the same choice still waiting. Choices do not wait for each
// other; an event without a choice waits for all.
func (s *streamFilter) release() {
	waiting := map[*choice]bool{}
	held := false
	kept := s.queue[:0]
	for i, e := range s.queue {
		if e.barrier {
			if held {
				kept = append(kept, s.queue[i:]...)
				break
			}
			// A blocked choice ends before the barrier unless it has events after it.
			s.emitFinals(choicesIn(s.queue[i+1:]))
		}
		ok := true
		for _, p := range e.parts {
			if waiting[p.c] || !s.ready(p) {
				ok = false
			}
		}
		if !ok {
			for _, p := range e.parts {
				waiting[p.c] = true
			}
			held = true
			kept = append(kept, e)
			continue
		}
		s.emit(e)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.emitFinals(choicesIn(kept))
	if s.allBlocked() {
		// Nothing more will reach the client: stop the model.
		if !s.doneSent {
			s.out.WriteString("data: [DONE]\n\n")
			s.doneSent = true
		}
		s.end(nil)
	}
}

// emitFinals ends the blocked choices that have no event left to go out.
func (s *streamFilter) emitFinals(pending map[*choice]bool) {
	for _, c := range s.choices {
		if c.blocked != nil && !c.final && !pending[c] {
			s.emitFinal(c)
		}
	}
}

// choicesIn returns the choices that events carry.
func choicesIn(events []*event) map[*choice]bool {
	m := map[*choice]bool{}
	for _, e := range events {
		for _, p := range e.parts {
			m[p.c] = true
		}
	}
	return m
}

// allBlocked reports whether every choice has been cut and closed.
func (s *streamFilter) allBlocked() bool {
	if len(s.choices) < s.req.n || len(s.queue) > 0 {
		return false
	}
	for _, c := range s.choices {
		if c.blocked == nil || !c.final {
			return false
		}
	}
	return true
}

// emit writes an event: as it came, or rewritten where a choice is cut or cited.
func (s *streamFilter) emit(e *event) {
	s.s.metrics.holdback.Observe(time.Since(e.arrived).Seconds())
	s.doneSent = s.doneSent || e.done
	if e.obj == nil || !s.rewrite(e) {
		s.out.Write(e.raw)
		return
	}
	chs, _ := e.obj["choices"].([]any)
	if len(chs) == 0 && e.obj["usage"] == nil {
		return // nothing left to say
	}
	writeEvent(&s.out, e.obj)
}

// rewrite changes the chunk of e where a choice in it is cut, closed or cited, and
// reports whether it changed anything.
func (s *streamFilter) rewrite(e *event) bool {
	changed := false
	chs, _ := e.obj["choices"].([]any)
	kept := chs[:0]
	for _, x := range chs {
		ch, _ := x.(map[string]any)
		if ch == nil {
			kept = append(kept, x)
			continue
		}
		c := s.choice(toInt(ch["index"]))
		switch {
		case c.final:
			changed = true
			continue // the proxy has ended this choice already
		case c.blocked != nil:
			changed = true
			if !s.cut(e, c, ch) {
				continue
			}
		default:
			if fr, ok := ch["finish_reason"]; ok && fr != nil {
				if cs := shown(s.cite(c)); len(cs) > 0 {
					annotate(ch, cs, false)
					changed = true
				}
			}
		}
		kept = append(kept, ch)
	}
	e.obj["choices"] = kept
	return changed
}

// cite returns a choice's citations, computed once, when the choice ends.
func (s *streamFilter) cite(c *choice) []citation {
	if c.cited == nil {
		c.cited = s.citations(c)
		if c.cited == nil {
			c.cited = []citation{}
		}
	}
	return c.cited
}

// cut trims what ch carries for the blocked choice c to what was checked before the
// cut, and reports whether anything of ch is left.
func (s *streamFilter) cut(e *event, c *choice, ch map[string]any) bool {
	limit := func(t *text) int { return c.blocked.limits[t] }
	delete(ch, "finish_reason")
	ch["finish_reason"] = nil
	delta, _ := ch["delta"].(map[string]any)
	left := false
	for _, p := range e.parts {
		if p.c != c || p.kind != partText {
			continue
		}
		keep := max(0, min(p.end, limit(p.t))-p.start)
		if p.t == c.content {
			if _, ok := ch["text"].(string); ok {
				ch["text"] = ch["text"].(string)[:keep]
			} else if delta != nil {
				delta["content"] = delta["content"].(string)[:keep]
			}
			left = left || keep > 0
		}
	}
	if calls, ok := delta["tool_calls"].([]any); ok {
		var keptCalls []any
		for _, y := range calls {
			tc, _ := y.(map[string]any)
			t := c.tools[toInt(tc["index"])]
			fn, _ := tc["function"].(map[string]any)
			args, _ := fn["arguments"].(string)
			for _, p := range e.parts {
				if p.t == t && p.kind == partText {
					keep := max(0, min(p.end, limit(t))-p.start)
					if keep > 0 || (keep == 0 && p.start < limit(t)) {
						fn["arguments"] = args[:keep]
						keptCalls = append(keptCalls, tc)
						left = true
					}
					break
				}
			}
		}
		if len(keptCalls) == 0 {
			delete(delta, "tool_calls")
		} else {
			delta["tool_calls"] = keptCalls
		}
	}
	_, role := delta["role"]
	return left || role
}

// emitFinal writes the last chunk of a blocked choice: finish_reason content_filter,
// with the citations.
func (s *streamFilter) emitFinal(c *choice) {
	c.final = true
	ch := map[string]any{"index": c.index, "logprobs": nil, "finish_reason": "content_filter"}
	obj := map[string]any{}
	for _, k := range []string{"id", "object", "created", "model", "system_fingerprint"} {
		if v, ok := s.template[k]; ok {
			obj[k] = v
		}
	}
	if s.req.endpoint == endpointCompletions {
		ch["text"] = ""
	} else {
		ch["delta"] = map[string]any{}
	}
	annotate(ch, s.cite(c), true)
	obj["choices"] = []any{ch}
	writeEvent(&s.out, obj)
}

// upstreamEnded finishes the stream after the upstream's last byte or a failure.
func (s *streamFilter) upstreamEnded(err error) {
	if rest := s.sse.rest(); len(rest.raw) > 0 {
		s.handle(rest)
	}
	s.finishAll()
	s.release()
	if s.ended {
		return
	}
	if err == io.EOF && s.doneSent {
		s.end(nil)
		return
	}
	if err == io.EOF && s.upstreamErr != "" {
		s.end(nil) // the upstream's own error event told the client; done() counts it
		return
	}
	if err == io.EOF {
		// A stream must end with [DONE]; one that does not broke off, and a client
		// must not take what it got for a whole answer.
		err = errors.New("the stream ended without [DONE]")
	}
	s.fail(err)
}

// fail ends the stream with an error event, after what was checked went out.
func (s *streamFilter) fail(err error) {
	if s.ended {
		return
	}
	s.out.Write(errorEvent("upstream_error", "upstream_stream_failed", "the upstream stream failed: "+err.Error()))
	s.end(err)
}

func (s *streamFilter) end(err error) {
	if s.ended {
		return
	}
	s.ended = true
	s.endErr = err
	if s.onEnd != nil {
		s.onEnd(s, err)
	}
}

// writeEvent writes obj as one server-sent event.
func writeEvent(w *bytes.Buffer, obj map[string]any) {
	w.WriteString("data: ")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(obj) // ends with "\n"
	w.WriteString("\n")
}

// toInt reads a JSON number decoded with UseNumber, or a float64.
func toInt(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	}
	return 0
}
