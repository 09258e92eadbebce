package upstream

import (
	"math/rand/v2"
	"net/http"
	"strconv"
)

// cutKinds are the faults that end a stream early, in the order they are checked.
var cutKinds = []FaultKind{FaultStall, FaultDrop, FaultTruncate, FaultErrorEvent}

// stream writes a streamed answer: the chunks of every choice, the usage chunk if
// asked, and [DONE], unless a fault cuts it short.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, a *answer, faults faultSet, wire Wire, rng *rand.Rand) {
	s.streams.Add(1)
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for m := s.maxActive.Load(); n > m && !s.maxActive.CompareAndSwap(m, n); m = s.maxActive.Load() {
	}

	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sw := newSSEWriter(w, rng, wire)
	if err := sw.rc.Flush(); err != nil {
		s.gone.Add(1)
		return
	}
	if wire.Comments {
		sw.comment()
	}
	ctx := r.Context()
	ch := newChunker(a, rng)
	usageDue := a.req.IncludeUsage
	for {
		data, ok := ch.next()
		if !ok && usageDue {
			data, ok, usageDue = ch.usageChunk(), true, false
		}
		if _, hit := faults.strikes(FaultGarbage, sw.events, !ok); hit {
			sw.raw([]byte("garbage\x7f not an SSE field" + sw.eol()))
			sw.raw([]byte("data: {\"id\": not JSON" + sw.eol() + sw.eol()))
		}
		for _, k := range cutKinds {
			if f, hit := faults.strikes(k, sw.events, !ok); hit {
				s.cut(w, r, sw, f)
				return
			}
		}
		if !ok {
			break
		}
		if err := sw.event(data); err != nil {
			s.gone.Add(1) // a failed write means the client went away
			return
		}
		if !s.wait(ctx, wire.Pace) {
			s.gone.Add(1)
			return
		}
	}
	if sw.event([]byte("[DONE]")) != nil || sw.flush() != nil {
		s.gone.Add(1)
	}
}

// cut ends a stream with fault f.
func (s *Server) cut(w http.ResponseWriter, r *http.Request, sw *sseWriter, f Fault) {
	if f.Kind == FaultErrorEvent {
		sw.event(statusError(http.StatusInternalServerError).body())
	}
	if err := sw.flush(); err != nil {
		s.gone.Add(1)
		return
	}
	switch f.Kind {
	case FaultStall:
		s.stall(r)
	case FaultDrop:
		drop(sw.rc)
	}
}

// stall hangs until the client goes away or the Server is closed.
func (s *Server) stall(r *http.Request) {
	select {
	case <-r.Context().Done():
		s.gone.Add(1)
	case <-s.closedChan():
	}
}

// drop closes the connection under a response in progress, so that the client sees
// the body end without its proper end (chunked terminator or Content-Length). Where
// the connection cannot be hijacked (HTTP/2), the handler aborts, which resets the
// stream.
func drop(rc *http.ResponseController) {
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// whole writes a non-streamed answer. Faults that cut a stream cut the body halfway.
func (s *Server) whole(w http.ResponseWriter, r *http.Request, a *answer, faults faultSet) {
	body := a.whole()
	if _, ok := faults.has(FaultErrorEvent); ok {
		body = statusError(http.StatusInternalServerError).body()
	}
	if _, ok := faults.has(FaultGarbage); ok {
		body = []byte("{\"id\": not JSON\n")
	}
	w.Header().Set("Content-Type", "application/json")
	_, truncate := faults.has(FaultTruncate)
	if !truncate {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	_, stall := faults.has(FaultStall)
	_, dropped := faults.has(FaultDrop)
	if stall || dropped || truncate {
		body = body[:len(body)/2]
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := w.Write(body); err != nil || rc.Flush() != nil {
		s.gone.Add(1)
		return
	}
	switch {
	case stall:
		s.stall(r)
	case dropped:
		drop(rc)
	}
}
