package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"cleanroom/index"
)

// IndexPath is the read-only endpoint that tells what the served index holds.
const IndexPath = "/v1/cleanroom/index"

// IndexInfo is what GET /v1/cleanroom/index answers: the index being served, so
// that users can see what is checked and how fresh it is.
type IndexInfo struct {
	Build      string    `json:"build"`
	Created    time.Time `json:"created"`
	AgeSeconds int64     `json:"age_seconds"` // since Created
	LoadedAt   time.Time `json:"loaded_at"`
	Parameters struct {
		K         int `json:"k"`
		W         int `json:"w"`
		Threshold int `json:"threshold"` // shared runs of this many tokens are always found
		Tokenizer int `json:"tokenizer"`
		Format    int `json:"format"`
		// MinTokens is the shortest match the proxy acts on (the threshold, or the
		// policy's min_tokens).
		MinTokens int `json:"min_tokens"`
	} `json:"parameters"`
	Sources  []IndexSource    `json:"sources"`
	Repos    int              `json:"repos"`
	Licenses map[string]int   `json:"licenses"` // documents by SPDX expression
	Totals   index.Totals     `json:"totals"`
	Shards   int              `json:"shards"`
	Allow    *index.AllowInfo `json:"allow,omitempty"`
}

// IndexSource is a source the index was built from: the manifest's, without the
// path it had on the machine that built it.
type IndexSource struct {
	Name     string           `json:"name"`
	Kind     string           `json:"kind"`
	Version  string           `json:"version,omitempty"`
	Files    int64            `json:"files"`   // source files read and fingerprinted
	Indexed  int64            `json:"indexed"` // of those, kept by the policy
	Bytes    int64            `json:"bytes"`
	Skipped  map[string]int64 `json:"skipped,omitempty"`
	Excluded map[string]int64 `json:"excluded,omitempty"`
}

// NewIndexInfo describes m, loaded at loaded, as of now.
func NewIndexInfo(m *index.Manifest, loaded, now time.Time) *IndexInfo {
	info := &IndexInfo{Build: m.Build, Created: m.Created, AgeSeconds: int64(now.Sub(m.Created).Seconds()), LoadedAt: loaded,
		Sources: []IndexSource{}, Repos: len(m.Repos), Licenses: m.Licenses, Totals: m.Totals, Shards: len(m.Shards), Allow: m.Allow}
	p := &info.Parameters
	p.K, p.W, p.Threshold, p.Tokenizer, p.Format = m.K, m.W, m.Params().Threshold(), m.Tokenizer, m.Format
	p.MinTokens = p.Threshold
	for _, s := range m.Sources {
		info.Sources = append(info.Sources, IndexSource{Name: s.Name, Kind: s.Kind, Version: s.Version, Files: s.Files,
			Indexed: s.Indexed, Bytes: s.Bytes, Skipped: s.Skipped, Excluded: s.Excluded})
	}
	return info
}

// indexInfo answers GET /v1/cleanroom/index.
func (s *Server) indexInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", IndexPath+" is read-only: use GET")
		return
	}
	l := s.store.acquire()
	if l == nil {
		msg := "cleanroom has no index loaded"
		if s.opts.FailOpen {
			msg += ": completions pass through unchecked (--fail-open)"
		}
		writeError(w, http.StatusServiceUnavailable, "server_error", "index_unavailable", msg)
		return
	}
	info := NewIndexInfo(l.ix.Meta(), l.at, time.Now())
	s.store.release(l)
	info.Parameters.MinTokens = max(info.Parameters.Threshold, s.opts.Match.MinTokens)
	b, _ := json.MarshalIndent(info, "", "  ")
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}
