package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"cleanroom/corpus/license"
	"cleanroom/proxy/upstream"
)

// modelPolicy lists three of the test upstream's models: gpt-4o under Apache-2.0,
// gpt-4o-mini non-commercial, upstream-echo restricted; and a pattern.
const modelPolicy = `
index:
  classes: [strong, weak]
models:
  list:
    - id: gpt-4o
      license: Apache-2.0
      license_url: https://www.apache.org/licenses/LICENSE-2.0
      commercial_use: true
      outputs_may_train_models: true
      reviewed: 2026-10-01
      reviewer: jane@example.com
    - id: gpt-4o-mini
      license: CC-BY-NC-4.0
      license_url: https://creativecommons.org/licenses/by-nc/4.0/
      reviewed: 2026-09-15
      reviewer: jane@example.com
    - id: upstream-echo
      license: LicenseRef-Echo-Community
      class: restricted
      commercial_use: true
      mau_threshold: 700000000
      outputs_may_train_models: false
      acceptable_use_url: https://example.com/aup
    - id: research-*
      license: LicenseRef-Research
      class: research-only
`

func TestParseModelPolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(modelPolicy), Block)
	if err != nil {
		t.Fatal(err)
	}
	mp := p.Models
	if mp == nil || len(mp.list) != 4 || mp.RequireKnown {
		t.Fatalf("models = %+v", mp)
	}
	for _, tt := range []struct{ model, class string }{
		{"gpt-4o", "open"}, {"gpt-4o-mini", "non-commercial"}, {"upstream-echo", "restricted"},
		{"research-7b", "research-only"}, {"GPT-4o", ""}, {"gpt-4o-2024-08-06", ""}, {"research-", "research-only"},
	} {
		got := ""
		if m := mp.Lookup(tt.model); m != nil {
			got = string(m.Class)
		}
		if got != tt.class {
			t.Errorf("Lookup(%q).Class = %q, want %q", tt.model, got, tt.class)
		}
	}
	if m := mp.Lookup("gpt-4o"); m.Reviewed != "2026-10-01" || *m.CommercialUse != true {
		t.Errorf("gpt-4o = %+v", m)
	}
	// The indexer reads the same file and ignores the proxy's sections.
	if _, err := license.ParsePolicy([]byte(modelPolicy)); err != nil {
		t.Errorf("the indexer does not read a policy with a models section: %v", err)
	}
}

func TestModelClassFromLicense(t *testing.T) {
	no := false
	for _, tt := range []struct {
		license    string
		commercial *bool
		want       ModelClass
	}{
		{"Apache-2.0", nil, ModelOpen},
		{"MIT", nil, ModelOpen},
		{"CC-BY-NC-4.0", nil, ModelNonCommercial},
		{"CC-BY-NC-SA-4.0", nil, ModelNonCommercial}, // share-alike, but non-commercial first
		{"PolyForm-Noncommercial-1.0.0", nil, ModelNonCommercial},
		{"LicenseRef-Llama-3.1-Community", nil, ModelUnknown},
		{"LicenseRef-Acme", &no, ModelNonCommercial},
		{"not a license", nil, ModelUnknown},
	} {
		if got := classOfModelLicense(tt.license, tt.commercial); got != tt.want {
			t.Errorf("class of %s (commercial use %v) = %s, want %s", tt.license, tt.commercial, got, tt.want)
		}
	}
}

func TestModelPolicyErrors(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"unknown section key", "models:\n  require_known: true\n", `unknown key "require_known"`},
		{"unknown entry key", "models:\n  list:\n    - id: m\n      license: MIT\n      licence_url: x\n", `unknown key "licence_url"`},
		{"no id", "models:\n  list:\n    - license: MIT\n", "no id"},
		{"no license", "models:\n  list:\n    - id: m\n", "has no license"},
		{"bad class", "models:\n  list:\n    - id: m\n      license: MIT\n      class: free\n", "unknown model license class"},
		{"bad blocked class", "models:\n  block_classes: [nc]\n", "unknown model license class"},
		{"contradiction", "models:\n  list:\n    - id: m\n      license: MIT\n      class: open\n      commercial_use: false\n", "contradicts class open"},
		{"contradiction the other way", "models:\n  list:\n    - id: m\n      license: CC-BY-NC-4.0\n      commercial_use: true\n", "contradicts class non-commercial"},
		{"twice", "models:\n  list:\n    - id: m\n      license: MIT\n    - id: m\n      license: MIT\n", "listed twice"},
		{"bad date", "models:\n  list:\n    - id: m\n      license: MIT\n      reviewed: last week\n", "YYYY-MM-DD"},
		{"negative MAU", "models:\n  list:\n    - id: m\n      license: MIT\n      mau_threshold: -1\n", "negative"},
		{"bad pattern", "models:\n  list:\n    - id: 'm[-'\n      license: MIT\n", "syntax error"},
		{"not a mapping", "models: [a]\n", "want a mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tt.yaml), Block)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func TestModelDecisions(t *testing.T) {
	strict := modelPolicy + "  require_known_model_license: true\n" +
		"  block_classes: [non-commercial, research-only, unknown]\n" +
		"  # and one that nobody classified:\n"
	strict = strings.Replace(strict, "  list:\n", "  list:\n    - id: mystery\n      license: LicenseRef-Mystery\n", 1)
	lax, _ := ParsePolicy([]byte(modelPolicy), Block)
	tight, err := ParsePolicy([]byte(strict), Block)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mp            *ModelPolicy
		model, code   string // code "" if allowed
		reasonHas     string
		labelsModel   string
		labelsLicense string
	}{
		{lax.Models, "gpt-4o", "", "", "gpt-4o", "Apache-2.0"},
		{lax.Models, "gpt-4o-mini", "model_license_blocked", "CC-BY-NC-4.0 (https://creativecommons.org/licenses/by-nc/4.0/), is non-commercial", "gpt-4o-mini", "CC-BY-NC-4.0"},
		{lax.Models, "research-13b", "model_license_blocked", "research-only", "research-*", "LicenseRef-Research"},
		{lax.Models, "upstream-echo", "", "", "upstream-echo", "LicenseRef-Echo-Community"},
		{lax.Models, "someone-elses-model", "", "", "unlisted", "unlisted"},
		{lax.Models, "GPT-4O-MINI", "", "", "unlisted", "unlisted"}, // ids are case-sensitive
		{nil, "gpt-4o-mini", "", "", "unlisted", "unlisted"},
		{tight.Models, "someone-elses-model", "model_license_unknown", "not in this gateway's model license list", "unlisted", "unlisted"},
		{tight.Models, "mystery", "model_license_blocked", "LicenseRef-Mystery, is unknown", "mystery", "LicenseRef-Mystery"},
		{tight.Models, "gpt-4o", "", "", "gpt-4o", "Apache-2.0"},
	} {
		d := tt.mp.Decide(tt.model)
		model, license, _, decision := d.labels()
		if d.code != tt.code || d.refused != (tt.code != "") || !strings.Contains(d.reason, tt.reasonHas) ||
			model != tt.labelsModel || license != tt.labelsLicense || (decision == "refused") != d.refused {
			t.Errorf("Decide(%q) = %+v, labels %s %s %s; want code %q, reason with %q, labels %s %s",
				tt.model, d, model, license, decision, tt.code, tt.reasonHas, tt.labelsModel, tt.labelsLicense)
		}
	}
}

// apiErr is an OpenAI error body.
type apiErr struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

func readAPIError(t *testing.T, resp *http.Response) apiErr {
	t.Helper()
	defer resp.Body.Close()
	var e apiErr
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("status %d, body not an OpenAI error: %v", resp.StatusCode, err)
	}
	return e
}

// TestModelLicenseGate asks the proxy for completions of each listed model: the
// non-commercial and research-only ones are refused with 403 before reaching the
// upstream, the Apache-2.0, restricted and unlisted ones pass, and every request
// is counted by model license.
func TestModelLicenseGate(t *testing.T) {
	e := newEnv(t, "block", modelPolicy)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "An original answer."})
	chat := func(model string, stream bool) *http.Response {
		b := chatBody(stream, 1, "hello")
		b["model"] = model
		return post(t, e.px.URL+"/v1/chat/completions", b)
	}
	for _, tt := range []struct {
		model, code, has string
		stream, legacy   bool
	}{
		{model: "gpt-4o-mini", code: "model_license_blocked", has: `"gpt-4o-mini"`},
		{model: "gpt-4o-mini", code: "model_license_blocked", has: "CC-BY-NC-4.0", stream: true},
		{model: "gpt-4o-mini", code: "model_license_blocked", has: "non-commercial", legacy: true},
		{model: "research-70b", code: "model_license_blocked", has: "research-only"},
		{model: "gpt-4o"}, {model: "gpt-4o", stream: true}, {model: "gpt-4o", legacy: true},
		{model: "upstream-echo"}, {model: "not-listed"},
	} {
		before := e.up.Stats().Requests
		var resp *http.Response
		if tt.legacy {
			resp = post(t, e.px.URL+"/v1/completions", map[string]any{"model": tt.model, "prompt": "hello"})
		} else {
			resp = chat(tt.model, tt.stream)
		}
		if tt.code == "" && tt.stream {
			if s := readStream(t, resp); s.content[0] != "An original answer." {
				t.Errorf("%s streamed: %q, want the upstream's answer", tt.model, s.content[0])
			}
			continue
		}
		if tt.code == "" {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("An original answer.")) {
				t.Errorf("%s (stream %v, legacy %v): status %d %s, want the upstream's answer", tt.model, tt.stream, tt.legacy, resp.StatusCode, body)
			}
			continue
		}
		ae := readAPIError(t, resp)
		if resp.StatusCode != http.StatusForbidden || ae.Error.Type != "invalid_request_error" || ae.Error.Code == nil ||
			*ae.Error.Code != tt.code || ae.Error.Param == nil || *ae.Error.Param != "model" || !strings.Contains(ae.Error.Message, tt.has) {
			t.Errorf("%s: status %d, error %+v; want 403 invalid_request_error %s on model, message with %q", tt.model, resp.StatusCode, ae.Error, tt.code, tt.has)
		}
		if got := e.up.Stats().Requests; got != before {
			t.Errorf("%s: a refused request reached the upstream", tt.model)
		}
	}
	t.Logf("the refusal reads: %s", readAPIError(t, chat("gpt-4o-mini", false)).Error.Message)

	// Other endpoints that name a model are gated too; the test upstream answers
	// 404 to those it lets through.
	resp := post(t, e.px.URL+"/v1/embeddings", map[string]any{"model": "gpt-4o-mini", "input": "x"})
	if ae := readAPIError(t, resp); resp.StatusCode != http.StatusForbidden || *ae.Error.Code != "model_license_blocked" {
		t.Errorf("embeddings for a non-commercial model: status %d %+v, want 403", resp.StatusCode, ae)
	}
	resp = post(t, e.px.URL+"/v1/embeddings", map[string]any{"model": "gpt-4o", "input": "x"})
	if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("embeddings for an Apache-2.0 model: status %d, want the upstream's 404", resp.StatusCode)
	}

	m := e.srv.metrics
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"gpt-4o-mini", "CC-BY-NC-4.0", "non-commercial", "refused"}, 5},
		{[]string{"gpt-4o", "Apache-2.0", "open", "allowed"}, 4},
		{[]string{"research-*", "LicenseRef-Research", "research-only", "refused"}, 1},
		{[]string{"upstream-echo", "LicenseRef-Echo-Community", "restricted", "allowed"}, 1},
		{[]string{"unlisted", "unlisted", "unknown", "allowed"}, 1},
		{[]string{"gpt-4o", "Apache-2.0", "open", "refused"}, 0},
	} {
		if got := testutil.ToFloat64(m.modelRequests.WithLabelValues(tt.labels...)); got != tt.want {
			t.Errorf("cleanroom_model_requests_total%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues(endpointChat, "true", "refused")); got != 1 {
		t.Errorf("streamed chat requests refused: %v, want 1", got)
	}
}

func TestRequireKnownModelLicense(t *testing.T) {
	e := newEnv(t, "block", modelPolicy+"  require_known_model_license: true\n")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "ok"})
	b := chatBody(false, 1, "hello")
	b["model"] = "not-listed"
	resp := post(t, e.px.URL+"/v1/chat/completions", b)
	ae := readAPIError(t, resp)
	if resp.StatusCode != http.StatusForbidden || *ae.Error.Code != "model_license_unknown" || !strings.Contains(ae.Error.Message, `"not-listed"`) {
		t.Errorf("unlisted model with require_known_model_license: %d %+v", resp.StatusCode, ae)
	}
	b["model"] = "gpt-4o"
	if resp := post(t, e.px.URL+"/v1/chat/completions", b); resp.Body.Close() != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("listed Apache-2.0 model: status %d", resp.StatusCode)
	}
}

// modelList is what GET /v1/models answers, with the license objects cleanroom adds.
type modelList struct {
	Object string `json:"object"`
	Data   []struct {
		ID      string            `json:"id"`
		OwnedBy string            `json:"owned_by"`
		Created int64             `json:"created"`
		License *modelLicenseInfo `json:"license"`
	} `json:"data"`
}

func TestModelListCarriesLicenses(t *testing.T) {
	e := newEnv(t, "block", modelPolicy)
	resp, err := http.Get(e.px.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var l modelList
	if err := json.Unmarshal(raw, &l); err != nil || l.Object != "list" || len(l.Data) != 4 {
		t.Fatalf("GET /v1/models: %v %s", err, raw)
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(raw)) {
		t.Errorf("Content-Length %s for a body of %d bytes", cl, len(raw))
	}
	byID := map[string]*modelLicenseInfo{}
	for _, m := range l.Data {
		if m.OwnedBy != "upstream" || m.Created != 1700000000 {
			t.Errorf("%s lost the upstream's fields: %+v", m.ID, m)
		}
		byID[m.ID] = m.License
	}
	yes := true
	for id, want := range map[string]*modelLicenseInfo{
		"gpt-4o": {ID: "Apache-2.0", URL: "https://www.apache.org/licenses/LICENSE-2.0", Class: "open", CommercialUse: &yes,
			OutputsMayTrainModels: &yes, Reviewed: "2026-10-01", Reviewer: "jane@example.com", Listed: true, Allowed: true},
		"gpt-4o-mini":            {ID: "CC-BY-NC-4.0", Class: "non-commercial", Listed: true, Allowed: false},
		"upstream-echo":          {ID: "LicenseRef-Echo-Community", Class: "restricted", MAUThreshold: 700000000, Listed: true, Allowed: true},
		"gpt-3.5-turbo-instruct": nil,
	} {
		got := byID[id]
		switch {
		case want == nil && got != nil:
			t.Errorf("%s is not in the policy but got a license object: %+v", id, got)
		case want == nil:
		case got == nil:
			t.Errorf("%s has no license object", id)
		case got.ID != want.ID || got.Class != want.Class || got.Listed != want.Listed || got.Allowed != want.Allowed ||
			got.MAUThreshold != want.MAUThreshold || (want.Reviewer != "" && got.Reviewer != want.Reviewer) ||
			(want.CommercialUse != nil && (got.CommercialUse == nil || *got.CommercialUse != *want.CommercialUse)):
			t.Errorf("%s: license %+v, want %+v", id, got, want)
		case !got.Allowed && !strings.Contains(got.Reason, "non-commercial"):
			t.Errorf("%s: refused without a reason: %+v", id, got)
		}
	}

	resp, err = http.Get(e.px.URL + "/v1/models/gpt-4o-mini")
	if err != nil {
		t.Fatal(err)
	}
	var one struct {
		ID      string            `json:"id"`
		OwnedBy string            `json:"owned_by"`
		License *modelLicenseInfo `json:"license"`
	}
	json.NewDecoder(resp.Body).Decode(&one)
	resp.Body.Close()
	if one.ID != "gpt-4o-mini" || one.OwnedBy != "upstream" || one.License == nil || one.License.Allowed || one.License.Class != "non-commercial" {
		t.Errorf("GET /v1/models/gpt-4o-mini: %+v", one)
	}
}

// TestModelListPassesUnchanged: without a models section, and for bodies that are
// not model lists, the upstream's answer passes byte for byte.
func TestModelListPassesUnchanged(t *testing.T) {
	bodies := map[string]string{
		"/v1/models":        `{"object":"list","data":[{"id":"other","object":"model"}]}`,
		"/v2/models":        `<html>not json</html>`,
		"/v3/models":        `{"object":"list","data":"not a list"}`,
		"/v1/models/gpt-4o": `[1,2,3]`,
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer up.Close()
	for _, policy := range []string{"", modelPolicy} {
		dir := t.TempDir()
		buildTestIndex(t, filepath.Join(dir, "ix"), 1)
		opts := Options{Index: filepath.Join(dir, "ix"), Upstream: up.URL, AuditLog: filepath.Join(dir, "audit")}
		if policy != "" {
			opts.PolicyFile = filepath.Join(dir, "policy.yaml")
			os.WriteFile(opts.PolicyFile, []byte(policy), 0o644)
		}
		s, err := New(opts, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		px := httptest.NewServer(s.Handler())
		for p, want := range bodies {
			resp, err := http.Get(px.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != want {
				t.Errorf("policy with models %v: GET %s = %s, want the upstream's %s", policy != "", p, got, want)
			}
		}
		px.Close()
		s.Close()
	}
}
