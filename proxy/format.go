package proxy

import (
	"net/http"
	"strings"
)

// A format is one generation API the proxy checks: how its requests read, how its
// responses are read and written (its wire), and how it says an error. Adding an
// API is one file that defines its format and wire.
type format struct {
	// name is the endpoint label of metrics and logs.
	name string
	// suffix is the end of the paths it is served at, in lower case:
	// "/chat/completions" matches POST /v1/chat/completions and /openai/chat/completions.
	suffix string
	// parse reads a request body.
	parse func(body []byte) (*request, error)
	// newWire returns the reader and writer of one response.
	newWire func(req *request) wire
	// lines says its streams are NDJSON, not server-sent events.
	lines bool
	// errorBody is an error in the API's own shape, as its clients parse it.
	errorBody func(typ, code, param, message string) []byte
}

// formats are the APIs the proxy checks, the longest suffix first where one ends
// another (chat/completions before completions).
var formats = []*format{chatFormat, completionsFormat}

var chatFormat = &format{
	name:      endpointChat,
	suffix:    "/chat/completions",
	parse:     func(b []byte) (*request, error) { return parseRequest(endpointChat, b) },
	newWire:   func(*request) wire { return &chatWire{} },
	errorBody: openAIError,
}

var completionsFormat = &format{
	name:      endpointCompletions,
	suffix:    "/completions",
	parse:     func(b []byte) (*request, error) { return parseRequest(endpointCompletions, b) },
	newWire:   func(*request) wire { return &chatWire{legacy: true} },
	errorBody: openAIError,
}

// formatOf returns the format a request is for, or nil. Case and a trailing slash
// do not matter: a spelling an upstream might route to a generation endpoint must
// not pass unfiltered.
func formatOf(r *http.Request) *format {
	if r.Method != http.MethodPost {
		return nil
	}
	p := cleanPath(r)
	if strings.Contains(p, "/threads/") {
		return nil // the Assistants API's messages are not Anthropic's: refused unless passed
	}
	for _, f := range formats {
		if strings.HasSuffix(p, f.suffix) {
			return f
		}
	}
	return nil
}

// writeError answers with an error in the format's shape.
func (fm *format) writeError(w http.ResponseWriter, status int, typ, code, param, message string) {
	writeBody(w, status, fm.errorBody(typ, code, param, message))
}
