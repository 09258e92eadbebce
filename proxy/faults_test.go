package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"cleanroom/proxy/upstream"
)

// faultClient bounds every request of these tests: a proxy that hangs fails them.
var faultClient = &http.Client{Timeout: 10 * time.Second}

// postFault sends a completion request through url with the test upstream's fault
// header set to fault.
func postFault(t *testing.T, url, fault string, stream bool) *http.Response {
	t.Helper()
	b, _ := json.Marshal(chatBody(stream, 1, "tell me something"))
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(upstream.FaultHeader, fault)
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Fatalf("fault %s: %v", fault, err)
	}
	return resp
}

// sseData returns the data of every event of a stream, in order.
func sseData(raw []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(strings.TrimRight(sc.Text(), "\r"), "data:"); ok {
			out = append(out, strings.TrimSpace(d))
		}
	}
	return out
}

// TestUpstreamErrorStatusesPassFaithfully: an upstream's error statuses, OpenAI
// error bodies and HTML error pages reach the client as the upstream sent them.
func TestUpstreamErrorStatusesPassFaithfully(t *testing.T) {
	e := newEnv(t, "block", "")
	for _, fault := range []string{"status:400", "status:401", "status:404", "status:429", "status:500", "status:503", "html:502", "html:504"} {
		for _, stream := range []bool{true, false} {
			direct := postFault(t, e.upSrv.URL, fault, stream)
			want, _ := io.ReadAll(direct.Body)
			direct.Body.Close()
			resp := postFault(t, e.px.URL, fault, stream)
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != direct.StatusCode || !bytes.Equal(got, want) ||
				resp.Header.Get("Content-Type") != direct.Header.Get("Content-Type") {
				t.Errorf("%s stream=%v: got %d %q %q (%v), want %d %q %q", fault, stream, resp.StatusCode,
					resp.Header.Get("Content-Type"), got, err, direct.StatusCode, direct.Header.Get("Content-Type"), want)
			}
		}
	}
	if got := counterValue(t, e, `cleanroom_upstream_errors_total{kind="status"}`); got != 16 {
		t.Errorf("upstream status errors counted %v, want 16", got)
	}
}

// TestUpstreamBrokenStreams: a stream the upstream truncates, drops, fills with
// garbage or ends with an error event reaches the client as far as it was checked,
// and then ends cleanly: with an error event the client can read (never a hang, a
// reset, or a [DONE] that would pass a broken answer off as whole).
func TestUpstreamBrokenStreams(t *testing.T) {
	e := newEnv(t, "block", "")
	answer := strings.Repeat("An original sentence about nothing in particular. ", 30)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: answer})
	tests := []struct {
		fault   string
		done    bool   // the stream ends with [DONE]
		errHas  string // the last event is an error with this in its message
		content bool   // the whole answer arrives
	}{
		{fault: "truncate:5", errHas: "without [DONE]"},
		{fault: "drop:5", errHas: "upstream stream failed"},
		{fault: "error-event:5", errHas: ""}, // the upstream's own error event, passed on
		{fault: "garbage:5", done: true, content: true},
		{fault: "truncate:0", errHas: "without [DONE]"},
		{fault: "drop:0", errHas: "upstream stream failed"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			start := time.Now()
			resp := postFault(t, e.px.URL, tt.fault, true)
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d, read error %v: the client got no clean end", resp.StatusCode, err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			data := sseData(raw)
			if len(data) == 0 {
				t.Fatalf("no events: %q", raw)
			}
			last := data[len(data)-1]
			if got := last == "[DONE]"; got != tt.done {
				t.Errorf("ends with %q; want [DONE]: %v", last, tt.done)
			}
			if !tt.done {
				var ev struct {
					Error *apiError `json:"error"`
				}
				if json.Unmarshal([]byte(last), &ev) != nil || ev.Error == nil || !strings.Contains(ev.Error.Message, tt.errHas) {
					t.Errorf("last event %q, want an error event saying %q", last, tt.errHas)
				}
			}
			var content strings.Builder
			for _, d := range data {
				var chunk struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
				}
				if json.Unmarshal([]byte(d), &chunk) == nil && len(chunk.Choices) > 0 {
					content.WriteString(chunk.Choices[0].Delta.Content)
				}
			}
			if !strings.HasPrefix(answer, content.String()) || (content.String() == answer) != tt.content {
				t.Errorf("the client got %d bytes of the %d-byte answer (want all: %v)", content.Len(), len(answer), tt.content)
			}
		})
	}
	if got := counterValue(t, e, `cleanroom_requests_total{endpoint="chat",outcome="upstream_error",stream="true"}`); got != float64(len(tests)) {
		t.Errorf("upstream errors counted %v, want %d", got, len(tests))
	}
}

// TestUpstreamBrokenWholeResponses: a non-streamed answer cut short, dropped or
// replaced by garbage does not crash the proxy, and the client gets an answer: a
// 502 for what the proxy cannot read (it is not passed unchecked).
func TestUpstreamBrokenWholeResponses(t *testing.T) {
	e := newEnv(t, "block", "")
	for _, tt := range []struct {
		fault  string
		status int
	}{{"truncate", 502}, {"garbage", 502}, {"drop", 502}, {"error-event", 200}} {
		resp := postFault(t, e.px.URL, tt.fault, false)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tt.status {
			t.Errorf("%s: status %d %q (%v), want %d", tt.fault, resp.StatusCode, body, err, tt.status)
		}
	}
}

// TestUpstreamTimeouts: an upstream slow to answer gets a 504 after
// UpstreamTimeout; one that stalls mid-stream ends the client's stream with an
// error event after StreamIdle, and is itself canceled; a slow but live upstream
// is served.
func TestUpstreamTimeouts(t *testing.T) {
	e := newEnv(t, "block", "", func(o *Options) {
		o.UpstreamTimeout = 300 * time.Millisecond
		o.StreamIdle = 300 * time.Millisecond
	})
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: strings.Repeat("Original words, one after another. ", 20)})
	for _, stream := range []bool{true, false} {
		start := time.Now()
		resp := postFault(t, e.px.URL, "slow:3s", stream)
		ae := readAPIError(t, resp)
		if took := time.Since(start); resp.StatusCode != 504 || ae.Error.Code == nil || *ae.Error.Code != "upstream_timeout" || took > 2*time.Second {
			t.Errorf("slow first byte, stream=%v: %d %+v after %v; want 504 upstream_timeout after ~300ms", stream, resp.StatusCode, ae.Error, took)
		}
	}
	// A stall mid-stream.
	start := time.Now()
	resp := postFault(t, e.px.URL, "stall:3", true)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	data := sseData(raw)
	if err != nil || len(data) == 0 || !strings.Contains(data[len(data)-1], "stalled") || took > 3*time.Second {
		t.Errorf("stall: after %v, err %v, events %q; want a stall error event after ~300ms", took, err, data)
	}
	if _, ok := e.up.WaitStats(time.Second, func(s upstream.Stats) bool { return s.Gone >= 2 && s.Active == 0 }); !ok {
		t.Errorf("the stalled upstream request was not canceled: %+v", e.up.Stats())
	}
	// A stall in a whole response.
	resp = postFault(t, e.px.URL, "stall", false)
	if ae := readAPIError(t, resp); resp.StatusCode != 504 || !strings.Contains(ae.Error.Message, "stalled") {
		t.Errorf("stalled whole response: %d %+v", resp.StatusCode, ae.Error)
	}
	// Slow, but within the limits.
	if s := readStream(t, postFault(t, e.px.URL, "slow:100ms", true)); !s.done || s.finish[0] != "stop" {
		t.Errorf("a slow start within the timeout was not served: done %v, finish %q", s.done, s.finish[0])
	}
}

// TestOverlongReply: a reply longer than MaxReply ends with an error event (or a
// 502 for a whole response); one within it passes whole.
func TestOverlongReply(t *testing.T) {
	e := newEnv(t, "annotate", "", func(o *Options) { o.MaxReply = 256 << 10 })
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "Original words, one after another. "})
	resp := postFault(t, e.px.URL, "huge:2MB", true)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The event the reply was cut in is dropped: the error is an event of its own.
	if err != nil || !bytes.HasSuffix(raw, []byte("\n\n")) || !bytes.Contains(raw, []byte("\n\ndata: {\"error\"")) ||
		!bytes.Contains(raw, []byte(`reply too long: more than 262144 bytes","type":"upstream_error"`)) ||
		bytes.Contains(raw, []byte("[DONE]")) || len(raw) > 300<<10 {
		t.Errorf("overlong stream: %d bytes, err %v, ends %q", len(raw), err, raw[max(0, len(raw)-300):])
	}
	resp = postFault(t, e.px.URL, "huge:2MB", false)
	if ae := readAPIError(t, resp); resp.StatusCode != 502 || !strings.Contains(ae.Error.Message, "too long") {
		t.Errorf("overlong whole response: %d %+v", resp.StatusCode, ae.Error)
	}
	s := readStream(t, postFault(t, e.px.URL, "huge:8KB", true)) // ~80 KB of events
	if len(s.content[0]) != 8<<10 || !s.done {
		t.Errorf("an 8 KB reply: got %d bytes, done %v", len(s.content[0]), s.done)
	}
}

// TestClientDisconnectCancelsWithinASecond: a client that goes away mid-stream
// cancels the upstream request within a second.
func TestClientDisconnectCancelsWithinASecond(t *testing.T) {
	e := newEnv(t, "block", "")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: strings.Repeat("word ", 5000)})
	req, _ := http.NewRequest("POST", e.px.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("X-Upstream-Wire", "pace:20ms")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.up.WaitStats(2*time.Second, func(s upstream.Stats) bool { return s.Active == 1 }); !ok {
		t.Fatalf("the upstream stream did not start: %+v", e.up.Stats())
	}
	resp.Body.Read(make([]byte, 100))
	start := time.Now()
	resp.Body.Close()
	_, ok := e.up.WaitStats(time.Second, func(s upstream.Stats) bool { return s.Gone >= 1 && s.Active == 0 })
	if !ok {
		t.Errorf("the upstream stream was not canceled within a second: %+v", e.up.Stats())
	}
	t.Logf("canceled upstream after %v", time.Since(start))
	series := `cleanroom_requests_total{endpoint="chat",outcome="canceled",stream="true"}`
	for deadline := time.Now().Add(time.Second); counterValue(t, e, series) != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := counterValue(t, e, series); got != 1 {
		t.Errorf("canceled requests counted %v, want 1", got)
	}
}
