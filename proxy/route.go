package proxy

import (
	"net/http"
	"strings"
)

// passThrough are the ends of the paths of POST requests the proxy passes on
// unchecked: they carry no text a model writes (model lists, embeddings,
// moderations, files, token counts, Ollama's model management). Every other POST
// that is not a generation endpoint the proxy checks is refused: what the proxy
// does not understand must not pass unchecked.
var passThrough = []string{
	"/models", "/embeddings", "/embed", "/moderations", "/files", "/uploads",
	"/tokenize", "/detokenize", "/count_tokens",
	"/api/show", "/api/pull", "/api/push", "/api/create", "/api/copy", "/api/blobs",
}

// storedOutput are path parts of GET requests that return what a model wrote
// earlier, kept by the upstream (a stored response, a stored chat completion, a
// batch's results): unchecked, so refused like an unknown POST.
var storedOutput = []string{"/responses/", "/chat/completions/", "/messages/batches/"}

// cleanPath is a request's path as the proxy compares it: lower case, without a
// trailing slash.
func cleanPath(r *http.Request) string {
	return strings.TrimSuffix(strings.ToLower(r.URL.Path), "/")
}

// passes reports whether a request the proxy does not check may go to the
// upstream as it is; if not, it answers 404 in the OpenAI error shape, naming the
// path, and counts the refusal. The operator's Options.Passthrough paths pass.
func (s *Server) passes(w http.ResponseWriter, r *http.Request) bool {
	p := cleanPath(r)
	for _, op := range s.opts.Passthrough {
		op = strings.ToLower(op)
		if prefix, ok := strings.CutSuffix(op, "*"); ok && strings.HasPrefix(p, prefix) || p == strings.TrimSuffix(op, "/") {
			return true
		}
	}
	why := ""
	switch {
	case r.Header.Get("Upgrade") != "":
		// A WebSocket (the Realtime API): its frames are not read.
		why = "a connection upgrade (such as the Realtime API's WebSocket) is not checked by cleanroom, so it is refused"
	case r.Method == http.MethodPost && !hasSuffixIn(p, passThrough):
		why = "cleanroom does not check what this endpoint returns, so it refuses it"
	case r.Method == http.MethodGet && containsIn(p+"/", storedOutput):
		why = "this returns model output the upstream stored, which cleanroom cannot check, so it refuses it"
	default:
		return true
	}
	s.metrics.requests.WithLabelValues(endpointOther, "unknown", "unsupported").Inc()
	s.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "reason", why)
	writeError(w, http.StatusNotFound, "invalid_request_error", "unsupported_endpoint",
		r.Method+" "+r.URL.Path+": "+why+" (the operator may list the path with --passthrough to pass it unchecked)")
	return false
}

func hasSuffixIn(p string, suffixes []string) bool {
	for _, s := range suffixes {
		if strings.HasSuffix(p, s) || strings.Contains(p, s+"/") {
			return true
		}
	}
	return false
}

func containsIn(p string, parts []string) bool {
	for _, s := range parts {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}
