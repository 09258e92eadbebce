// Package upstream is a fake OpenAI-compatible completion API for testing the proxy:
// it speaks the wire format of POST /v1/chat/completions, POST /v1/completions and
// GET /v1/models exactly, and plays a model that answers what a Script says, such as
// corpus text it regurgitates.
//
// Streams are cut unevenly on purpose. Each choice's content is split into deltas of
// 1 to 40 bytes at random (never inside a UTF-8 character, as the API never does),
// the deltas of several choices are interleaved, and the bytes of the events are
// written in uneven pieces (see Wire). Faults (see Fault) make the server misbehave
// in the ways real servers do: error statuses, HTML error pages, slow starts, stalls,
// dropped connections, truncated streams, garbage and mid-stream error events.
//
// The server records the last request and counts requests, streams and clients that
// went away, so that tests can check what a proxy forwarded and that a client's
// disconnect cancels the upstream request.
//
// Tests that cannot reach the Go value (SDK tests in other languages, a server run
// with cmd/upstream) steer each request through it: the header X-Upstream-Fault
// (ParseFaults) picks faults, X-Upstream-Wire (ParseWire) picks the framing, and a
// last user message whose first line is "#upstream: JSON" (DirectivePrefix) scripts
// the replies. With Admin set, GET /_upstream/stats and /_upstream/last report the
// counts and the last request.
package upstream

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// maxBody is the largest request body read.
const maxBody = 64 << 20

// A Server is the fake model's HTTP handler. Set its fields before serving; they are
// not safe to change while requests are in flight.
type Server struct {
	// Script decides the replies. Nil means EchoScript. A last user message that
	// starts with DirectivePrefix overrides it.
	Script Script
	// Faults apply to every request that has no FaultHeader.
	Faults []Fault
	// Wire frames the streams of every request that has no WireHeader.
	Wire Wire
	// Seed seeds the uneven chunking. The same Seed and request body give the same
	// deltas and the same write boundaries.
	Seed int64
	// APIKey, if set, is the only bearer token accepted; others get a 401. Empty
	// accepts any request.
	APIKey string
	// Log receives a line per request. Nil: no logging.
	Log *slog.Logger
	// Admin serves GET /_upstream/stats (Stats as JSON) and GET /_upstream/last (the
	// last request: method, path, header, body), for tests that run the
	// server in another process. Admin requests are not counted or recorded.
	Admin bool

	mu   sync.Mutex
	last Recorded

	closeOnce sync.Once
	closed    chan struct{}

	requests, streams, active, maxActive, gone atomic.Int64
}

// Recorded is a request as the server received it.
type Recorded struct {
	Method string
	Path   string // the request URI: path and query
	Header http.Header
	Body   []byte
}

// Stats counts what the server has seen.
type Stats struct {
	Requests  int64 // requests received, on any route
	Streams   int64 // streamed answers begun
	Active    int64 // streamed answers in progress now
	MaxActive int64 // most streamed answers in progress at once
	Gone      int64 // requests whose client went away before the answer was complete
}

// New returns a Server that echoes, with no faults.
func New() *Server {
	return &Server{closed: make(chan struct{})}
}

// LastRequest returns a copy of the last request received.
func (s *Server) LastRequest() Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// Stats returns the current counts.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Streams: s.streams.Load(), Active: s.active.Load(),
		MaxActive: s.maxActive.Load(), Gone: s.gone.Load()}
}

// WaitStats polls the counts until cond holds or timeout passes, and returns the last
// counts and whether cond held.
func (s *Server) WaitStats(timeout time.Duration, cond func(Stats) bool) (Stats, bool) {
	deadline := time.Now().Add(timeout)
	for {
		st := s.Stats()
		if cond(st) {
			return st, true
		}
		if time.Now().After(deadline) {
			return st, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close ends stalls and slow starts in progress and to come, so that their handlers
// return (an httptest.Server's Close waits for them). The Server goes on answering
// other requests.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closedChan()) })
}

func (s *Server) closedChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed == nil {
		s.closed = make(chan struct{})
	}
	return s.closed
}

// ServeHTTP answers the OpenAI routes; anything else is a 404 in the OpenAI error
// shape.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Admin && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/_upstream/") {
		s.admin(w, r)
		return
	}
	s.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	s.mu.Lock()
	s.last = Recorded{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body}
	s.mu.Unlock()
	if s.Log != nil {
		s.Log.Info("request", "method", r.Method, "path", r.URL.Path, "bytes", len(body))
	}
	if err != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "could not read the request body"})
		return
	}
	if s.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.APIKey {
		writeError(w, &Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
			Message: "Incorrect API key provided. You can find your API key at the provider."})
		return
	}
	switch {
	case r.Method == http.MethodPost && (r.URL.Path == ChatPath || r.URL.Path == LegacyPath):
		s.complete(w, r, body)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		writeJSON(w, http.StatusOK, modelList())
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/models/") && isModel(r.URL.Path[len("/v1/models/"):]):
		writeJSON(w, http.StatusOK, marshal(modelObject(r.URL.Path[len("/v1/models/"):])))
	default:
		writeError(w, &Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "Invalid URL (" + r.Method + " " + r.URL.Path + ")"})
	}
}

func (s *Server) admin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_upstream/stats":
		st := s.Stats()
		writeJSON(w, http.StatusOK, marshal(map[string]int64{"requests": st.Requests, "streams": st.Streams,
			"active": st.Active, "max_active": st.MaxActive, "gone": st.Gone}))
	case "/_upstream/last":
		last := s.LastRequest()
		writeJSON(w, http.StatusOK, marshal(map[string]any{"method": last.Method, "path": last.Path,
			"header": last.Header, "body": string(last.Body)}))
	default:
		writeError(w, &Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "Invalid URL (" + r.Method + " " + r.URL.Path + ")"})
	}
}

// complete answers one completion request.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, body []byte) {
	faults, wire, err := s.options(r)
	if err != nil {
		writeError(w, invalid("", "", "%v", err))
		return
	}
	req, err := parseRequest(r.URL.Path, body)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	replies, err := s.replies(req)
	if err != nil {
		writeError(w, asError(err))
		return
	}
	if f, ok := faults.has(FaultSlow); ok && !s.wait(r.Context(), f.Delay) {
		s.gone.Add(1)
		return
	}
	if f, ok := faults.has(FaultStatus); ok {
		writeError(w, statusError(f.Status))
		return
	}
	if f, ok := faults.has(FaultHTML); ok {
		writeHTML(w, f.Status)
		return
	}
	if f, ok := faults.has(FaultHuge); ok {
		for i := range replies {
			replies[i].Content = huge(replies[i].Content, f.Size)
		}
	}
	a := newAnswer(req, replies)
	rng := rand.New(rand.NewPCG(uint64(s.Seed), hashBytes(body)))
	w.Header().Set("X-Request-Id", "req_"+randomID(24))
	w.Header().Set("Openai-Model", req.Model)
	if req.Stream {
		s.stream(w, r, a, faults, wire, rng)
	} else {
		s.whole(w, r, a, faults)
	}
}

// options returns the faults and wire of request r.
func (s *Server) options(r *http.Request) (faultSet, Wire, error) {
	faults, wire := s.Faults, s.Wire
	var err error
	if v := r.Header.Values(FaultHeader); len(v) > 0 {
		if faults, err = ParseFaults(strings.Join(v, ",")); err != nil {
			return nil, wire, err
		}
	}
	if v := r.Header.Get(WireHeader); v != "" {
		if wire, err = ParseWire(v); err != nil {
			return nil, wire, err
		}
	}
	return newFaultSet(faults), wire, nil
}

// replies runs the directive or the script and checks its answer.
func (s *Server) replies(req *Request) ([]Reply, error) {
	replies, ok, err := directive(req)
	if !ok {
		script := s.Script
		if script == nil {
			script = EchoScript
		}
		replies, err = script(req)
	}
	if err != nil {
		return nil, err
	}
	if len(replies) != req.N {
		return nil, &Error{Status: http.StatusInternalServerError, Type: "server_error",
			Message: "upstream: script returned a wrong number of replies"}
	}
	replies = append([]Reply(nil), replies...) // the script may keep its slice
	for i := range replies {
		r := &replies[i]
		r.Content = sanitize(r.Content)
		r.ToolCalls = append([]ToolCall(nil), r.ToolCalls...)
		for j := range r.ToolCalls {
			r.ToolCalls[j].Name = sanitize(r.ToolCalls[j].Name)
			r.ToolCalls[j].Arguments = sanitize(r.ToolCalls[j].Arguments)
		}
	}
	return replies, nil
}

// wait sleeps for d and reports whether it slept the whole time: false if the client
// went away first. Closing the Server ends the wait early.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closedChan():
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}
}

// statusError is the error body the API sends with a status.
func statusError(status int) *Error {
	e := &Error{Status: status, Type: "server_error",
		Message: "The server had an error while processing your request. Sorry about that!"}
	switch {
	case status == 0:
		e.Status = http.StatusInternalServerError
	case status == http.StatusUnauthorized:
		e.Type, e.Code = "invalid_request_error", "invalid_api_key"
		e.Message = "Incorrect API key provided."
	case status == http.StatusTooManyRequests:
		e.Type, e.Code = "requests", "rate_limit_exceeded"
		e.Message = "Rate limit reached for requests. Please try again in 20ms."
	case status == http.StatusServiceUnavailable:
		e.Message = "The engine is currently overloaded, please try again later."
	case status < 500:
		e.Type = "invalid_request_error"
		e.Message = "upstream fault: " + http.StatusText(status)
	}
	return e
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, e.body())
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func writeHTML(w http.ResponseWriter, status int) {
	if status == 0 {
		status = http.StatusBadGateway
	}
	text := http.StatusText(status)
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	io.WriteString(w, "<html>\r\n<head><title>"+text+"</title></head>\r\n<body>\r\n<center><h1>"+
		text+"</h1></center>\r\n<hr><center>upstream</center>\r\n</body>\r\n</html>\r\n")
}

// huge repeats s until it is size bytes long (default 4 MiB), cut at a character
// boundary.
func huge(s string, size int) string {
	if size <= 0 {
		size = 4 << 20
	}
	if s == "" {
		s = "All work and no play makes a model a dull model.\n"
	}
	s = strings.Repeat(s, size/len(s)+1)[:size]
	i := len(s) - 1
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	if i >= 0 && !utf8.FullRuneInString(s[i:]) {
		s = s[:i]
	}
	return s
}

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}
