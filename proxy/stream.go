package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
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
	out      bytes.Buffer
	queue    []*event
	template []byte     // the latest chunk, for the fields of chunks the proxy writes
	chunk    chunk      // the chunk being read
	shape    chunkShape // the shape of the chunks before it
	touched  []*choice  // choices added to since they were last decided
	now      time.Time  // when the events being read arrived; then when they were read
	doneSent bool       // a [DONE] has gone to the client
	ended    bool
	closed   bool
	onEnd    func(f *streamFilter, err error) // called once, when the stream ends
	endErr   error
}

// An event is one upstream event waiting to go out.
type event struct {
	raw     []byte
	data    []byte    // a chunk's JSON; nil for anything else
	order   []*choice // the choice of each element of the chunk's choices (nil: not an object)
	parts   []part
	barrier bool // carries no choice: waits for every event before it
	done    bool // the upstream's [DONE]
	arrived time.Time
	// Room for what a chunk of one choice carries, allocated with the event.
	partsBuf [3]part
	orderBuf [1]*choice
}

// A part is what an event carries for one choice.
type part struct {
	c          *choice
	kind       partKind
	t          *text
	start, end int // bytes of t
	field      partField
	call       int    // for arguments: the position of the tool call in the chunk's tool_calls
	str        string // the piece of text, as read
}

// A partField says where in a chunk a piece of text is.
type partField uint8

const (
	fieldText    partField = iota // choices[].text (legacy completions)
	fieldContent                  // choices[].delta.content
	fieldArgs                     // choices[].delta.tool_calls[].function.arguments
)

type partKind uint8

const (
	partPresence partKind = iota // the choice appears (a role, an empty delta)
	partText                     // a piece of one of its texts
	partFinish                   // its finish_reason
	partLate                     // text after its finish_reason
)

func newStreamFilter(f *filter, up io.ReadCloser, maxEvent int, onEnd func(*streamFilter, error)) *streamFilter {
	return &streamFilter{filter: f, up: up, sse: sseReader{maxSize: maxEvent}, onEnd: onEnd}
}

// Read implements io.Reader for the ReverseProxy that copies the body to the client.
// Until there is output, p is the buffer the upstream is read into (io.Reader lets
// Read use all of p as scratch space): an open stream holds no read buffer of its own.
func (s *streamFilter) Read(p []byte) (int, error) {
	for s.out.Len() == 0 {
		if s.ended {
			return 0, io.EOF
		}
		n, err := s.up.Read(p)
		if n > 0 {
			// The events in p arrive now; reading and checking them is the scan.
			s.now = time.Now()
			ferr := s.sse.feed(p[:n], s.handle)
			s.decideTouched()
			done := time.Now()
			s.scan += done.Sub(s.now)
			s.now = done
			if ferr != nil {
				s.fail(ferr)
				break
			}
			if s.failIndex() {
				break
			}
		}
		if err != nil {
			s.upstreamEnded(err)
			break
		}
		s.release()
		if s.failIndex() {
			break
		}
	}
	n, _ := s.out.Read(p)
	if s.out.Len() == 0 && s.out.Cap() > maxIdleOut {
		s.out = bytes.Buffer{} // a burst's buffer is not kept for the rest of the stream
	}
	return n, nil
}

// maxIdleOut is the most output buffer a stream keeps while it waits.
const maxIdleOut = 8 << 10

// copyBuffers lends the ReverseProxy its buffers for copying responses: 8 KiB,
// a quarter of its default, is plenty for streamed events of a few hundred bytes,
// and every open stream holds one.
var copyBuffers = bufferPool{sync.Pool{New: func() any { return make([]byte, 8<<10) }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return b.p.Get().([]byte) }
func (b *bufferPool) Put(x []byte) { b.p.Put(x) }

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
	e := &event{raw: ev.raw, arrived: s.now}
	e.parts, e.order = e.partsBuf[:0], e.orderBuf[:0]
	data := bytes.TrimSpace(ev.data)
	switch {
	case ev.data == nil:
		e.barrier = true // a comment or keep-alive
	case string(data) == "[DONE]":
		e.barrier, e.done = true, true
		s.finishAll()
	default:
		c := &s.chunk
		valid := s.shape.read(data, c)
		if !valid || !c.object || !c.isArray || len(c.choices) == 0 {
			e.barrier = true // an error, a usage chunk, something else
			if !valid || !c.object || c.hasError {
				s.upstreamErr = "stream" // an error event, or not a chunk at all
			}
			break
		}
		e.data = data
		s.template = data
		s.parse(e, c.choices)
	}
	s.queue = append(s.queue, e)
	return nil
}

// parse reads the choices of a chunk into the filter.
func (s *streamFilter) parse(e *event, chs []chunkChoice) {
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
					u.detector().close()
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
		if !slices.Contains(s.touched, c) {
			s.touched = append(s.touched, c) // decided after the burst (see Read)
		}
	}
}

// decideTouched decides the choices that the events just read added to.
func (s *streamFilter) decideTouched() {
	for _, c := range s.touched {
		s.decide(c)
	}
	s.touched = s.touched[:0]
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
	if !s.hold || p.c.blocked != nil || p.kind == partPresence || p.kind == partLate {
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
	var waiting []*choice // choices with an event held (few: a set as a list)
	held := false
	kept := s.queue[:0]
	for i, e := range s.queue {
		if e.barrier {
			if held {
				kept = append(kept, s.queue[i:]...)
				break
			}
			// A blocked choice ends before the barrier unless it has events after it.
			s.emitFinals(s.queue[i+1:])
		}
		ok := true
		for _, p := range e.parts {
			if slices.Contains(waiting, p.c) || !s.ready(p) {
				ok = false
			}
		}
		if !ok {
			for _, p := range e.parts {
				if !slices.Contains(waiting, p.c) {
					waiting = append(waiting, p.c)
				}
			}
			held = true
			kept = append(kept, e)
			continue
		}
		s.emit(e)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.emitFinals(kept)
	if s.allBlocked() {
		// Nothing more will reach the client: stop the model.
		if !s.doneSent {
			s.out.WriteString("data: [DONE]\n\n")
			s.doneSent = true
		}
		s.end(nil)
	}
}

// emitFinals ends the blocked choices that have no event left to go out among
// pending.
func (s *streamFilter) emitFinals(pending []*event) {
	if s.blockedChoices == 0 {
		return
	}
	for _, c := range s.choices {
		if c.blocked != nil && !c.final && !carries(pending, c) {
			s.emitFinal(c)
		}
	}
}

// carries reports whether one of events carries a part of c.
func carries(events []*event, c *choice) bool {
	for _, e := range events {
		for _, p := range e.parts {
			if p.c == c {
				return true
			}
		}
	}
	return false
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
	s.s.metrics.holdback.Observe(s.now.Sub(e.arrived).Seconds())
	s.doneSent = s.doneSent || e.done
	if e.data == nil || !s.changes(e) {
		s.out.Write(e.raw)
		return
	}
	obj, err := decodeObject(e.data)
	if err != nil {
		return // not reached: the chunk was read as valid JSON; if it were, it stays out
	}
	s.rewrite(e, obj)
	chs, _ := obj["choices"].([]any)
	if len(chs) == 0 && obj["usage"] == nil {
		return // nothing left to say
	}
	writeEvent(&s.out, obj)
}

// decodeObject decodes a JSON object, numbers kept as written.
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
	return obj, nil
}

// changes reports whether the proxy changes e's chunk: a choice in it is cut,
// closed, has spoken after its end, or ends with citations to add.
func (s *streamFilter) changes(e *event) bool {
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

// has reports whether e carries a part of kind k for c.
func (e *event) has(c *choice, k partKind) bool {
	for _, p := range e.parts {
		if p.c == c && p.kind == k {
			return true
		}
	}
	return false
}

// rewrite changes obj, the chunk of e, where a choice in it is cut, closed or
// cited. The choices of obj are those parse read, in the same order.
func (s *streamFilter) rewrite(e *event, obj map[string]any) {
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
			if !s.cut(e, c, ch) {
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
// cut, and reports whether anything of ch is left. Text that parse did not read
// (it came after the cut) goes entirely.
func (s *streamFilter) cut(e *event, c *choice, ch map[string]any) bool {
	limit := func(p part) int { return max(0, min(p.end, c.blocked.limits[p.t])-p.start) }
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
		keep := limit(p)
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

// emitFinal writes the last chunk of a blocked choice: finish_reason content_filter,
// with the citations.
func (s *streamFilter) emitFinal(c *choice) {
	c.final = true
	ch := map[string]any{"index": c.index, "logprobs": nil, "finish_reason": "content_filter"}
	obj := map[string]any{}
	template, _ := decodeObject(s.template)
	for _, k := range []string{"id", "object", "created", "model", "system_fingerprint"} {
		if v, ok := template[k]; ok {
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
	s.now = time.Now()
	defer func() {
		done := time.Now()
		s.scan += done.Sub(s.now)
		s.now = done
	}()
	if rest := s.sse.rest(); len(rest.raw) > 0 {
		// An event the stream broke off in is not dispatched (the SSE spec says
		// so) and not passed on: a client would read it glued to what follows.
		// A [DONE] that lacks only its blank line still ends the stream.
		if string(bytes.TrimSpace(rest.data)) == "[DONE]" {
			s.handle(sseEvent{raw: []byte("data: [DONE]\n\n"), data: []byte("[DONE]")})
		}
	}
	s.decideTouched()
	s.finishAll()
	s.release()
	if s.failIndex() {
		// In fail-open mode the rest is released unchecked.
		s.finishAll()
		s.release()
	}
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

// failIndex acts on a lookup the index failed to answer and reports whether it
// did: in fail-open mode the filter stops holding text back (the rest passes
// unchecked); else what was checked goes out and the stream ends with an error
// event.
func (s *streamFilter) failIndex() bool {
	if !s.indexFailed() {
		return false
	}
	s.release()
	if !s.s.opts.FailOpen {
		s.out.Write(errorEvent("server_error", "index_unavailable",
			"cleanroom could not check the rest of this completion: its index did not answer ("+s.storeErr.Error()+")"))
		s.end(errIndexFailed)
	}
	return true
}

// errIndexFailed ends a stream whose check the index could not finish.
var errIndexFailed = errors.New("the index did not answer")

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
