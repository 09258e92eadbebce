package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// apiError is the OpenAI error shape, which every client library parses:
// {"error": {"message": ..., "type": ..., "param": null, "code": ...}}.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeError answers with an error in the OpenAI shape.
func writeError(w http.ResponseWriter, status int, typ, code, message string) {
	writeParamError(w, status, typ, code, "", message)
}

// writeParamError answers with an error in the OpenAI shape that names the
// request's parameter at fault.
func writeParamError(w http.ResponseWriter, status int, typ, code, param, message string) {
	writeBody(w, status, openAIError(typ, code, param, message))
}

// writeBody answers with a JSON error body.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// openAIError is the body of an error response in the OpenAI shape.
func openAIError(typ, code, param, message string) []byte {
	e := apiError{Message: message, Type: typ}
	if code != "" {
		e.Code = &code
	}
	if param != "" {
		e.Param = &param
	}
	b, _ := json.Marshal(map[string]apiError{"error": e})
	return b
}

// errorBody is the body of an error response in the OpenAI shape.
func errorBody(typ, code, message string) []byte { return openAIError(typ, code, "", message) }

// errorEvent is a server-sent event carrying an error, as OpenAI sends one mid-stream.
func errorEvent(typ, code, message string) []byte {
	return append(append([]byte("data: "), errorBody(typ, code, message)...), "\n\n"...)
}
