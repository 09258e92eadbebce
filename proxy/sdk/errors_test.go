package sdk_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"cleanroom/proxy/upstream"
)

// apiStatus returns the HTTP status and the message of a client's error. openai-go's
// Error says only the status; its message is a field.
func apiStatus(err error) (int, string) {
	var ne *nodeError
	var ge *openai.Error
	switch {
	case errors.As(err, &ne):
		return ne.Status, ne.Message
	case errors.As(err, &ge):
		return ge.StatusCode, ge.Message
	}
	return 0, err.Error()
}

// TestClientErrors checks that each client raises the upstream's failures as
// errors, through the proxy, and never takes a stream that broke off for a whole
// answer.
func TestClientErrors(t *testing.T) {
	cases := []struct {
		name   string
		fault  string
		stream bool
		status int    // the status the client's error must report; 0: any
		text   string // what its message must say
	}{
		{"rate-limited", "status:429", false, 429, "Rate limit"},
		{"rate-limited/stream", "status:429", true, 429, "Rate limit"},
		{"error-event", "error-event:3", true, 0, "The server had an error"},
		{"dropped", "drop:3", true, 0, "the upstream stream failed"},
		{"truncated", "truncate:3", true, 0, "ended without [DONE]"},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					up := newUpstream(1, gplAnswer(3, 2, 50).text, original)
					var err error
					if up.Faults, err = upstream.ParseFaults(tc.fault); err != nil {
						t.Fatal(err)
					}
					e := startEnv(t, gen, "block", up)
					got, err := c.send(t, e.api, request{"chat", tc.stream, 2, "x"})
					if err == nil {
						t.Fatalf("the client raised no error for %s; it received %+v", tc.fault, got)
					}
					status, msg := apiStatus(err)
					if tc.status != 0 && status != tc.status {
						t.Errorf("error %v: status %d, want %d", err, status, tc.status)
					}
					if !strings.Contains(msg, tc.text) {
						t.Errorf("error %q does not say %q", msg, tc.text)
					}
				})
			}
		})
	}
}
