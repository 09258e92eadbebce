// Package upstream is a fake model server for testing the proxy: it speaks the wire
// formats of these APIs exactly, and plays a model that answers what a Script says,
// such as corpus text it regurgitates:
//
//   - OpenAI: POST /v1/chat/completions (ChatPath), POST /v1/completions
//     (LegacyPath), GET /v1/models, and the Responses API, POST /v1/responses
//     (ResponsesPath; see responses.go);
//   - Anthropic: the Messages API, POST /v1/messages (MessagesPath; messages.go);
//   - Ollama: POST /api/chat (OllamaChatPath) and POST /api/generate
//     (OllamaGeneratePath), NDJSON streams that are on unless "stream": false, and
//     minimal GET /api/tags, GET /api/version and POST /api/show (ollama.go).
//
// Each API answers with its own objects, stream events and error shapes; the Reply
// a Script returns is translated for each (reasoning, text, tool calls and custom
// tool calls become output items, content blocks or message fields). Other paths
// are a 404 in OpenAI's error shape (Ollama's under /api/).
//
// Streams are cut unevenly on purpose. Each text (content, reasoning, a call's
// arguments or input) is split into deltas of 1 to 40 bytes at random (never inside
// a UTF-8 character, as the APIs never do), the deltas of several chat choices are
// interleaved, and the bytes of the events (SSE events, or NDJSON lines) are written
// in uneven pieces (see Wire). Faults (see Fault) make the server misbehave in the
// ways real servers do: error statuses, HTML error pages, slow starts, stalls,
// dropped connections, truncated streams, garbage and mid-stream error events, each
// in the shape of the API asked.
//
// The server records the last request and counts requests, streams and clients that
// went away, so that tests can check what a proxy forwarded and that a client's
// disconnect cancels the upstream request.
//
// Tests that cannot reach the Go value (SDK tests in other languages, a server run
// with cmd/upstream) steer each request through it: the header X-Upstream-Fault
// (ParseFaults) picks faults, X-Upstream-Wire (ParseWire) picks the framing, and a
// last user message (a Responses input item, a Messages text block, an Ollama
// message, a prompt) whose first line is "#upstream: JSON" (DirectivePrefix)
// scripts the replies. With Admin set, GET /_upstream/stats and /_upstream/last
// report the counts and the last request.
package upstream

import (
	"context"
	"encoding/json"
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
	// APIKey, if set, is the only bearer token accepted (the Messages API also takes
	// it as x-api-key); others get a 401. Empty accepts any request.
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

// ServeHTTP answers the routes of the package doc; anything else is a 404.
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
	f, known := formatOf(r.URL.Path)
	if err != nil {
		writeFormatError(w, f, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "could not read the request body"})
		return
	}
	if s.APIKey != "" && !f.authorized(r.Header, s.APIKey) {
		writeFormatError(w, f, f.statusError(http.StatusUnauthorized, nil))
		return
	}
	switch {
	case known && r.Method == http.MethodPost:
		s.complete(w, r, f, body)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		writeJSON(w, http.StatusOK, modelList())
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/models/") && isModel(r.URL.Path[len("/v1/models/"):]):
		writeJSON(w, http.StatusOK, marshal(modelObject(r.URL.Path[len("/v1/models/"):])))
	case r.Method == http.MethodGet && r.URL.Path == "/api/tags":
		writeJSON(w, http.StatusOK, ollamaTags())
	case r.Method == http.MethodGet && r.URL.Path == "/api/version":
		writeJSON(w, http.StatusOK, []byte(`{"version":"`+ollamaVersion+`"}`))
	case r.Method == http.MethodPost && r.URL.Path == "/api/show":
		ollamaShow(w, body)
	case strings.HasPrefix(r.URL.Path, "/api/"):
		writeFormatError(w, f, &Error{Status: http.StatusNotFound, Message: "404 page not found"})
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

// complete answers one request for a model's reply in format f.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, f format, body []byte) {
	faults, wire, err := s.options(r)
	if err != nil {
		writeFormatError(w, f, invalid("", "", "%v", err))
		return
	}
	req, err := f.parse(r.URL.Path, body)
	if err != nil {
		writeFormatError(w, f, asError(err))
		return
	}
	replies, err := s.replies(req)
	if err != nil {
		writeFormatError(w, f, asError(err))
		return
	}
	if fault, ok := faults.has(FaultSlow); ok && !s.wait(r.Context(), fault.Delay) {
		s.gone.Add(1)
		return
	}
	if fault, ok := faults.has(FaultStatus); ok {
		writeFormatError(w, f, f.statusError(fault.Status, req))
		return
	}
	if fault, ok := faults.has(FaultHTML); ok {
		writeHTML(w, fault.Status)
		return
	}
	if fault, ok := faults.has(FaultHuge); ok {
		for i := range replies {
			replies[i].Content = huge(replies[i].Content, fault.Size)
		}
	}
	a := newAnswer(req, replies)
	rng := rand.New(rand.NewPCG(uint64(s.Seed), hashBytes(body)))
	f.headers(w.Header(), a)
	if req.Stream {
		s.stream(w, r, f, a, faults, wire, rng)
	} else {
		s.whole(w, r, f, a, faults)
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
		r.Reasoning = sanitize(r.Reasoning)
		r.ToolCalls = append([]ToolCall(nil), r.ToolCalls...)
		for j := range r.ToolCalls {
			c := &r.ToolCalls[j]
			c.Name, c.Arguments = sanitize(c.Name), sanitize(c.Arguments)
			if objectArguments(req.Path) {
				if strings.TrimSpace(c.Arguments) == "" {
					c.Arguments = "{}"
				}
				if !isJSONObject(c.Arguments) {
					return nil, &Error{Status: http.StatusInternalServerError, Type: "server_error",
						Message: "upstream: tool call arguments must be a JSON object for " + req.Path}
				}
			}
		}
		r.CustomToolCalls = append([]CustomToolCall(nil), r.CustomToolCalls...)
		for j := range r.CustomToolCalls {
			c := &r.CustomToolCalls[j]
			c.Name, c.Input = sanitize(c.Name), sanitize(c.Input)
		}
	}
	return replies, nil
}

// objectArguments reports whether the endpoint at path sends tool call arguments as
// a JSON object rather than as its text.
func objectArguments(path string) bool {
	return path == MessagesPath || path == OllamaChatPath
}

func isJSONObject(s string) bool {
	var v map[string]any
	return json.Unmarshal([]byte(s), &v) == nil && v != nil
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

// writeFormatError answers e in the error shape of format f.
func writeFormatError(w http.ResponseWriter, f format, e *Error) {
	writeJSON(w, e.Status, f.errorBody(e))
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
