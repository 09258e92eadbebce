package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// admitModel applies the policy's model license gate to a request for model: it
// counts the request under the model's license and, when the policy refuses the
// model, answers 403 in the OpenAI error shape and reports false.
func (s *Server) admitModel(w http.ResponseWriter, fm *format, model, path string) bool {
	d := s.policy.Models.Decide(model)
	s.metrics.modelRequests.WithLabelValues(d.labels()).Inc()
	if !d.refused {
		return true
	}
	license := unlisted
	if d.entry != nil {
		license = d.entry.License
	}
	s.log.Info("model refused", "model", model, "path", path, "license", license, "code", d.code)
	fm.writeError(w, http.StatusForbidden, "invalid_request_error", d.code, "model", d.message(model))
	return false
}

// gatePassThrough applies the model gate to a request the proxy does not filter
// (embeddings, responses, ...): a POST with a JSON body that names a model. Other
// requests, and every request when the policy has no models section, pass as they
// are, their bodies unread. It reports whether the request may go on.
func (s *Server) gatePassThrough(w http.ResponseWriter, r *http.Request) bool {
	if s.policy.Models == nil || r.Method != http.MethodPost {
		return true
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
				fmt.Sprintf("the request body is larger than %d bytes", s.opts.MaxBody))
		}
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	var req struct {
		Model *string `json:"model"`
	}
	if json.Unmarshal(body, &req) != nil || req.Model == nil {
		return true // not ours to judge: the upstream answers it
	}
	return s.admitModel(w, chatFormat, *req.Model, r.URL.Path)
}

// modelsKey marks, in a request's context, a GET of the model list (true) or of one
// model (false), whose answer gets the models' license objects.
type modelsKey struct{}

// modelsRequest returns r marked when it asks for the model list or one model.
func modelsRequest(r *http.Request) *http.Request {
	if r.Method != http.MethodGet {
		return r
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	if strings.HasSuffix(p, "/models") {
		return r.WithContext(context.WithValue(r.Context(), modelsKey{}, true))
	}
	if i := strings.LastIndex(p, "/models/"); i >= 0 && !strings.Contains(p[i+len("/models/"):], "/") {
		return r.WithContext(context.WithValue(r.Context(), modelsKey{}, false))
	}
	return r
}

// annotateModels adds a license object to each model of a model list, or to a
// model, that the policy lists or refuses. A body that is not a model list passes
// unchanged, as does one larger than MaxEvent.
func (s *Server) annotateModels(resp *http.Response) error {
	list, ok := resp.Request.Context().Value(modelsKey{}).(bool)
	if !ok || s.policy.Models == nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(s.opts.MaxEvent)+1))
	if err != nil {
		resp.Body.Close()
		return err
	}
	if len(body) > s.opts.MaxEvent {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	out := body
	if list {
		out = s.policy.Models.annotateList(body)
	} else if m := s.policy.Models.annotateModel(body); m != nil {
		out = m
	}
	if out == nil {
		out = body
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// annotateList returns a model list with license objects added, or nil if body is
// not a model list ({"object": "list", "data": [{"id": ...}, ...]}).
func (mp *ModelPolicy) annotateList(body []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	var data []json.RawMessage
	if json.Unmarshal(top["data"], &data) != nil || data == nil {
		return nil
	}
	changed := false
	for i, m := range data {
		if out := mp.annotateModel(m); out != nil {
			data[i], changed = out, true
		}
	}
	if !changed {
		return nil
	}
	top["data"] = marshalPlain(data)
	return marshalPlain(top)
}

// annotateModel returns a model object with its license object added, or nil if
// the policy has nothing to say about it or body is not a model object.
func (mp *ModelPolicy) annotateModel(body []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var id string
	if json.Unmarshal(m["id"], &id) != nil || id == "" {
		return nil
	}
	li := mp.info(id)
	if li == nil {
		return nil
	}
	m["license"] = marshalPlain(li)
	return marshalPlain(m)
}

// marshalPlain is json.Marshal without the escaping of <, > and &, which would
// rewrite the upstream's strings (URLs) needlessly. v is decoded JSON or our own
// type, so it always encodes.
func marshalPlain(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
