package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFaultStatus(t *testing.T) {
	tests := []struct {
		fault      string
		status     int
		errType    string
		code       string
		contentTyp string
	}{
		{"status:400", 400, "invalid_request_error", "", "application/json"},
		{"status:401", 401, "invalid_request_error", "invalid_api_key", "application/json"},
		{"status:429", 429, "requests", "rate_limit_exceeded", "application/json"},
		{"status:500", 500, "server_error", "", "application/json"},
		{"status:503", 503, "server_error", "", "application/json"},
		{"html", 502, "", "", "text/html"},
		{"html:504", 504, "", "", "text/html"},
	}
	ts := httptest.NewServer(New())
	defer ts.Close()
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(tt.fault, func(t *testing.T) {
				resp := post(t, ts.URL+ChatPath, chatBody(1, stream, false, "hi"), map[string]string{FaultHeader: tt.fault})
				body := readAll(t, resp.Body)
				if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.contentTyp {
					t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, tt.contentTyp)
				}
				if tt.contentTyp == "text/html" {
					if !strings.HasPrefix(string(body), "<html>") {
						t.Errorf("body %q, want an HTML page", body)
					}
					return
				}
				checkErrorBody(t, body, tt.errType, tt.code)
			})
		}
	}
}

// checkErrorBody checks an OpenAI error body: all four fields present, of the right
// types and values.
func checkErrorBody(t *testing.T, body []byte, errType, code string) {
	t.Helper()
	var v struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Error == nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := v.Error[k]; !ok {
			t.Errorf("error body %s lacks %q", body, k)
		}
	}
	if msg, _ := v.Error["message"].(string); msg == "" {
		t.Errorf("error body %s: empty message", body)
	}
	if got := v.Error["type"]; got != errType {
		t.Errorf("error type = %v, want %q", got, errType)
	}
	var wantCode any
	if code != "" {
		wantCode = code
	}
	if got := v.Error["code"]; got != wantCode {
		t.Errorf("error code = %v, want %v", got, wantCode)
	}
}

func TestStreamFaults(t *testing.T) {
	tests := []struct {
		fault   string
		readErr error // from reading the whole body
		sseErr  string
		events  int // events before the end, or -1 for any
		done    bool
		check   func(t *testing.T, body []byte, events []sseEvent)
	}{
		{fault: "drop:3", readErr: io.ErrUnexpectedEOF, events: 3},
		{fault: "drop:0", readErr: io.ErrUnexpectedEOF, events: 0},
		{fault: "truncate:3", events: 3},
		{fault: "truncate:100000", events: -1, check: func(t *testing.T, body []byte, events []sseEvent) {
			assembleNoDone(t, events)
		}},
		{fault: "garbage:2", sseErr: "not an SSE line", events: 2, check: func(t *testing.T, body []byte, _ []sseEvent) {
			if !strings.Contains(string(body), "\ndata: {\"id\": not JSON\n\n") || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
				t.Errorf("want a non-JSON event and the stream going on to [DONE]; body ends %q", body[max(0, len(body)-200):])
			}
		}},
		{fault: "error-event:2", events: 3, check: func(t *testing.T, body []byte, events []sseEvent) {
			checkErrorBody(t, []byte(events[2].data), "server_error", "")
		}},
		{fault: "slow:300ms", events: -1, done: true},
		{fault: "huge:256KB", events: -1, done: true, check: func(t *testing.T, body []byte, events []sseEvent) {
			a := assemble(t, events, false, false)
			if got := a.content[0]; len(got) > 256<<10 || len(got) < 256<<10-3 || !strings.HasPrefix(got, longText+longText) {
				t.Errorf("huge content: %d bytes starting %.80q; want 256 KiB of the reply repeated", len(got), got)
			}
		}},
	}
	ts := httptest.NewServer(New())
	defer ts.Close()
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			start := time.Now()
			resp := post(t, ts.URL+ChatPath, chatBody(1, true, false, longText), map[string]string{FaultHeader: tt.fault})
			if strings.HasPrefix(tt.fault, "slow:") && time.Since(start) < 300*time.Millisecond {
				t.Errorf("headers after %v, want >= 300ms", time.Since(start))
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			body, err := io.ReadAll(resp.Body)
			if !errors.Is(err, tt.readErr) {
				t.Fatalf("read error %v, want %v", err, tt.readErr)
			}
			events, _, err := readSSE(body)
			if tt.sseErr == "" && err != nil || tt.sseErr != "" && (err == nil || !strings.Contains(err.Error(), tt.sseErr)) {
				t.Fatalf("SSE error %v, want %q", err, tt.sseErr)
			}
			if tt.events >= 0 && len(events) != tt.events {
				t.Errorf("%d events, want %d", len(events), tt.events)
			}
			gotDone := len(events) > 0 && events[len(events)-1].data == "[DONE]"
			if gotDone != tt.done && tt.sseErr == "" {
				t.Errorf("ends with [DONE]: %v, want %v", gotDone, tt.done)
			}
			if tt.check != nil {
				tt.check(t, body, events)
			}
		})
	}
}

// assembleNoDone checks a stream cut before [DONE] as if it had one.
func assembleNoDone(t *testing.T, events []sseEvent) {
	t.Helper()
	a := assemble(t, append(events, sseEvent{data: "[DONE]"}), false, false)
	a.check(t, []Reply{{Content: longText}}, ChatPath)
}

func TestWholeFaults(t *testing.T) {
	tests := []struct {
		fault   string
		readErr error
		check   func(body []byte) bool
	}{
		{"drop", io.ErrUnexpectedEOF, func(b []byte) bool { return !json.Valid(b) }},
		{"truncate", nil, func(b []byte) bool { return len(b) > 100 && !json.Valid(b) }},
		{"garbage", nil, func(b []byte) bool { return !json.Valid(b) }},
		{"error-event", nil, func(b []byte) bool { return strings.HasPrefix(string(b), `{"error":{"message":`) }},
		{"huge:100KB", nil, func(b []byte) bool { return len(b) > 100<<10 && json.Valid(b) }},
	}
	ts := httptest.NewServer(New())
	defer ts.Close()
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			resp := post(t, ts.URL+ChatPath, chatBody(1, false, false, longText), map[string]string{FaultHeader: tt.fault})
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !errors.Is(err, tt.readErr) {
				t.Fatalf("status %d, read error %v; want 200, %v", resp.StatusCode, err, tt.readErr)
			}
			if !tt.check(body) {
				t.Errorf("body %.200q does not show the fault", body)
			}
		})
	}
}

// TestStallAndCancel checks that a client that gives up on a stalled or slow answer is
// counted as gone within a second, and that Close releases stalls.
func TestStallAndCancel(t *testing.T) {
	tests := []struct {
		name   string
		stream bool
		fault  string
		wire   string
	}{
		{"stream stall", true, "stall:2", ""},
		{"stream paced", true, "", "pace:20ms"},
		{"whole stall", false, "stall", ""},
		{"slow start", true, "slow:1m", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			ts := httptest.NewServer(s)
			defer ts.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b, _ := json.Marshal(chatBody(1, tt.stream, false, longText))
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+ChatPath, strings.NewReader(string(b)))
			req.Header.Set(FaultHeader, tt.fault)
			req.Header.Set(WireHeader, tt.wire)
			got := make(chan string, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					got <- "no response"
					return
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				first, _ := br.ReadByte()
				got <- string(first)
				io.Copy(io.Discard, br)
			}()
			if tt.fault != "slow:1m" {
				select {
				case line := <-got:
					if line == "\x00" || line == "no response" {
						t.Fatalf("first byte %q, want the start of the answer", line)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no first line")
				}
			}
			if _, ok := s.WaitStats(time.Second, func(st Stats) bool { return st.Requests == 1 }); !ok {
				t.Fatal("request not seen")
			}
			time.Sleep(50 * time.Millisecond)
			if st := s.Stats(); st.Gone != 0 {
				t.Fatalf("gone = %d before the client went away", st.Gone)
			}
			cancel()
			if st, ok := s.WaitStats(time.Second, func(st Stats) bool { return st.Gone == 1 && st.Active == 0 }); !ok {
				t.Errorf("a second after cancel: stats %+v, want gone 1, active 0", st)
			}
		})
	}

	t.Run("close releases stall", func(t *testing.T) {
		s := New()
		ts := httptest.NewServer(s)
		defer ts.Close()
		resp := post(t, ts.URL+ChatPath, chatBody(1, true, false, longText), map[string]string{FaultHeader: "stall:1"})
		time.AfterFunc(100*time.Millisecond, s.Close)
		body, err := io.ReadAll(resp.Body)
		events, _, _ := readSSE(body)
		if err != nil || len(events) != 1 {
			t.Errorf("after Close: read error %v, %d events; want a clean end after 1 event", err, len(events))
		}
		if st := s.Stats(); st.Gone != 0 {
			t.Errorf("gone = %d, want 0: the server ended the stall", st.Gone)
		}
	})
}

func TestConcurrentStreams(t *testing.T) {
	s := New()
	s.Wire = Wire{Pace: 2 * time.Millisecond}
	ts := httptest.NewServer(s)
	defer ts.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := strings.Repeat("word ", 40+i)
			b, _ := json.Marshal(chatBody(1, true, false, user))
			resp, err := http.Post(ts.URL+ChatPath, "application/json", strings.NewReader(string(b)))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
				errs <- errors.New("stream without [DONE]")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.Streams != 4 || st.Active != 0 || st.MaxActive < 2 {
		t.Errorf("stats %+v, want 4 streams, none active, at least 2 at once", st)
	}
}
