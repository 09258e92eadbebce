package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// streamFilter is the body of a filtered streamed response: the one engine behind
// every wire format. It reads the upstream's events as they come (its wire reads
// each into the parts of text it carries) and passes each on once every text it
// carries has been checked: byte for byte as it came, unless a choice is cut in it
// (then its wire writes it changed). With no action that blocks, nothing is held
// back and only the end of a choice with a match changes, to carry the citation.
type streamFilter struct {
	*filter
	wire    wire
	up      io.ReadCloser
	frames  framer
	out     bytes.Buffer
	queue   []*event
	touched []*choice // choices added to since they were last decided
	now     time.Time // when the events being read arrived; then when they were read
	ended   bool
	aborted bool // a wire met what it cannot pass: nothing more goes out
	closed  bool
	onEnd   func(f *streamFilter, err error) // called once, when the stream ends
	endErr  error
}

// A wire reads and writes one API's wire format for the engine: a small,
// self-contained reader and writer per format (chat.go, responses.go, messages.go,
// ollama.go) drive the same detector, holdback and policy.
type wire interface {
	// read reads one upstream event into e: the parts of text it carries, through
	// the filter's choices and texts; or marks it a barrier.
	read(s *streamFilter, ev sseEvent, e *event)
	// write writes e to s.out: its raw bytes, unless the proxy changes it (a choice
	// in it is cut, ended or cited).
	write(s *streamFilter, e *event)
	// final writes the end of blocked choice c: the API's own sign of a filtered
	// answer, with the citations.
	final(s *streamFilter, c *choice)
	// stop writes what ends a stream the proxy ends itself, every choice blocked.
	stop(s *streamFilter)
	// partial takes the event the upstream's stream ended in before its end (an
	// NDJSON line without its newline, a [DONE] without its blank line): it hands it
	// to s.handle if the API takes it as whole.
	partial(s *streamFilter, ev sseEvent)
	// complete reports whether the stream reached the end the API gives a stream
	// ([DONE], response.completed, message_stop, done: true); endMark names it.
	complete() bool
	endMark() string
	// errorEvent returns an event that carries an error, in the API's shape.
	errorEvent(typ, code, message string) []byte
	// whole filters a whole (non-streamed) response body. It returns the body to
	// send: the upstream's bytes unchanged when nothing is cut or cited.
	whole(f *filter, body []byte) ([]byte, error)
}

// A framer splits a stream into events: server-sent events, or NDJSON lines.
type framer interface {
	feed(p []byte, emit func(sseEvent) error) error
	rest() sseEvent
}

// An event is one upstream event waiting to go out.
type event struct {
	raw     []byte
	data    []byte    // the event's JSON, if its wire reads it; nil for anything else
	order   []*choice // chat: the choice of each element of the chunk's choices (nil: not an object)
	parts   []part
	barrier bool // carries no choice: waits for every event before it
	done    bool // the upstream's end of the stream
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
	start, end int       // bytes of t
	field      partField // where in the event the piece is, as its wire says
	call       int       // chat arguments: the position of the tool call in the chunk's tool_calls
	str        string    // the piece of text, as read
}

// A partField says where in an event a piece of text is; each wire has its own.
type partField uint8

type partKind uint8

const (
	partPresence partKind = iota // the choice appears (a role, an empty delta)
	partText                     // a piece of one of its texts
	partFinish                   // its finish_reason
	partLate                     // text after its finish_reason
	partEnd                      // the end of text t: it waits until all of t is checked
)

func newStreamFilter(f *filter, w wire, lines bool, up io.ReadCloser, maxEvent int, onEnd func(*streamFilter, error)) *streamFilter {
	var fr framer = &sseReader{maxSize: maxEvent}
	if lines {
		fr = &lineReader{maxSize: maxEvent}
	}
	return &streamFilter{filter: f, wire: w, up: up, frames: fr, onEnd: onEnd}
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
			ferr := s.frames.feed(p[:n], s.handle)
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
	s.wire.read(s, ev, e)
	s.queue = append(s.queue, e)
	return nil
}

// touch notes that c was added to: it is decided after the burst (see Read).
func (s *streamFilter) touch(c *choice) {
	if !slices.Contains(s.touched, c) {
		s.touched = append(s.touched, c)
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
	if p.kind == partEnd {
		return p.t.safe() >= p.t.n
	}
	if p.t.tool && !p.t.det.closed {
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
	if s.allBlocked() && !s.aborted {
		// Nothing more will reach the client: stop the model.
		s.wire.stop(s)
		s.end(nil)
	}
}

// emitFinals ends the blocked choices that have no event left to go out among
// pending.
func (s *streamFilter) emitFinals(pending []*event) {
	if s.blockedChoices == 0 || s.aborted {
		return
	}
	for _, c := range s.choices {
		if c.blocked != nil && !c.final && !carries(pending, c) {
			c.final = true
			s.wire.final(s, c)
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

// emit writes an event, as its wire says.
func (s *streamFilter) emit(e *event) {
	if s.aborted {
		return
	}
	s.s.metrics.holdback.Observe(s.now.Sub(e.arrived).Seconds())
	s.wire.write(s, e)
}

// abort ends the stream here, with an error event saying why: the wire met an
// event it cannot check (one it cannot read, or a kind of text it does not know),
// which must not pass unchecked. What was checked before it has gone out; nothing
// after it does.
func (s *streamFilter) abort(what string) {
	if s.ended {
		return
	}
	s.out.Write(s.wire.errorEvent("upstream_error", "upstream_stream_unreadable",
		"cleanroom cannot check "+what+", so it ended the response here"))
	s.aborted = true
	s.end(fmt.Errorf("an upstream event the proxy cannot check: %s", what))
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

// upstreamEnded finishes the stream after the upstream's last byte or a failure.
func (s *streamFilter) upstreamEnded(err error) {
	s.now = time.Now()
	defer func() {
		done := time.Now()
		s.scan += done.Sub(s.now)
		s.now = done
	}()
	if rest := s.frames.rest(); len(rest.raw) > 0 {
		// An event the stream broke off in is not dispatched (the SSE spec says
		// so) and not passed on: a client would read it glued to what follows.
		// The wire may take it whole (an NDJSON line that lacks only its newline).
		s.wire.partial(s, rest)
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
	if err == io.EOF && s.wire.complete() {
		s.end(nil)
		return
	}
	if err == io.EOF && s.upstreamErr != "" {
		s.end(nil) // the upstream's own error event told the client; done() counts it
		return
	}
	if err == io.EOF {
		// A stream must end as its API ends one; one that does not broke off, and a
		// client must not take what it got for a whole answer.
		err = fmt.Errorf("the stream ended without %s", s.wire.endMark())
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
		s.out.Write(s.wire.errorEvent("server_error", "index_unavailable",
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
	s.out.Write(s.wire.errorEvent("upstream_error", "upstream_stream_failed", "the upstream stream failed: "+err.Error()))
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
