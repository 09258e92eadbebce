package promtest

import (
	"io"
	"strconv"
	"strings"
	"testing"
)

// TestUpstreamFailureMetrics makes the test upstream fail in each way it can and
// checks that the proxy counts the request as an upstream_error, under the kind of
// cleanroom_upstream_errors_total its help text gives: connect (no response), status
// (4xx or 5xx passed on), stream (the stream broke).
func TestUpstreamFailureMetrics(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stream bool
		fault  string
		kind   string // "" for any kind but connect: a response came
	}{
		{"status 500", false, "status:500", "status"},
		{"streamed status 503", true, "status:503", "status"},
		{"HTML 502 from a load balancer", false, "html", "status"},
		{"stream cut after 2 events", true, "drop:2", "stream"},
		{"body cut halfway", false, "drop", "stream"},
		{"error event mid-stream", true, "error-event:2", "stream"},
		{"error object with status 200", false, "error-event", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			resp := e.post(t, call{name: tt.name, stream: tt.stream, fault: tt.fault,
				reply: "A sentence long enough to take a few chunks of the stream to arrive."})
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := e.metrics(t)
			outcomes := map[string]float64{}
			for _, o := range []string{"clean", "annotated", "blocked", "upstream_error", "canceled"} {
				if v := sum(m, "cleanroom_requests_total", `outcome="`+o+`"`); v > 0 {
					outcomes[o] = v
				}
			}
			kinds := map[string]float64{}
			for _, k := range []string{"connect", "status", "stream"} {
				if v := sum(m, "cleanroom_upstream_errors_total", `kind="`+k+`"`); v > 0 {
					kinds[k] = v
				}
			}
			kindOK := len(kinds) == 1 && kinds[tt.kind] == 1
			want := tt.kind
			if tt.kind == "" {
				kindOK = len(kinds) == 1 && kinds["connect"] == 0 && (kinds["status"] == 1 || kinds["stream"] == 1)
				want = "status or stream"
			}
			if len(outcomes) != 1 || outcomes["upstream_error"] != 1 || !kindOK {
				t.Errorf("the client got status %d, ending %q\nrequests by outcome %v, upstream errors by kind %v; "+
					"want one upstream_error, one of kind %s", resp.StatusCode, body[max(0, len(body)-200):], outcomes, kinds, want)
			}
		})
	}
}

// sum returns the sum of the samples of metric name in an exposition that have all
// of the labels given (as `name="value"`).
func sum(exposition []byte, name string, labels ...string) float64 {
	total := 0.0
	for _, l := range strings.Split(string(exposition), "\n") {
		i := strings.LastIndexByte(l, ' ')
		series, value := l[:max(i, 0)], l[i+1:]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		all := true
		for _, lv := range labels {
			all = all && strings.Contains(series, lv)
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil && all {
			total += v
		}
	}
	return total
}
