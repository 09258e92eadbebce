package upstream

import (
	"math/rand/v2"
	"net/http"
	"strconv"
)

// cutKinds are the faults that end a stream early, in the order they are checked.
var cutKinds = []FaultKind{FaultStall, FaultDrop, FaultTruncate, FaultErrorEvent}

// stream writes a streamed answer in format f: its events and the format's last
// event ([DONE]), unless a fault cuts it short.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, f format, a *answer, faults faultSet, wire Wire, rng *rand.Rand) {
	s.streams.Add(1)
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for m := s.maxActive.Load(); n > m && !s.maxActive.CompareAndSwap(m, n); m = s.maxActive.Load() {
	}

	if f.ndjson() {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.WriteHeader(http.StatusOK)
	sw := newSSEWriter(w, rng, wire, f.ndjson())
	if err := sw.rc.Flush(); err != nil {
		s.gone.Add(1)
		return
	}
	if wire.Comments && !sw.ndjson {
		sw.comment()
	}
	ctx := r.Context()
	// strike applies the faults due once sw.events events are out, and reports
	// whether one ended the stream.
	strike := func(end bool) bool {
		if _, hit := faults.strikes(FaultGarbage, sw.events, end); hit {
			sw.garbage()
		}
		for _, k := range cutKinds {
			if fault, hit := faults.strikes(k, sw.events, end); hit {
				s.cut(r, f, a, sw, fault)
				return true
			}
		}
		return false
	}
	closed := false // the format's closing event came
	for ev := range f.events(a, rng) {
		closed = ev.last
		if strike(ev.last) {
			return
		}
		if err := sw.event(ev); err != nil {
			s.gone.Add(1) // a failed write means the client went away
			return
		}
		if !s.wait(ctx, wire.Pace) {
			s.gone.Add(1)
			return
		}
	}
	if !closed && strike(true) {
		return
	}
	if done := f.done(); done != nil && sw.event(event{data: done}) != nil || sw.flush() != nil {
		s.gone.Add(1)
	}
}

// cut ends a stream with fault f.
func (s *Server) cut(r *http.Request, f format, a *answer, sw *sseWriter, fault Fault) {
	if fault.Kind == FaultErrorEvent {
		sw.event(f.errorEvent(a, sw.events))
	}
	if err := sw.flush(); err != nil {
		s.gone.Add(1)
		return
	}
	switch fault.Kind {
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
func (s *Server) whole(w http.ResponseWriter, r *http.Request, f format, a *answer, faults faultSet) {
	body := f.whole(a)
	if _, ok := faults.has(FaultErrorEvent); ok {
		body = f.errorBody(f.statusError(http.StatusInternalServerError, a.req))
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
