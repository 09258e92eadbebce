package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"cleanroom/proxy/modelcard"
	"cleanroom/proxy/modelcard/cardtest"
	"cleanroom/proxy/upstream"
)

// cardPolicy lists two of the test upstream's models with what their reviews read
// on the cards: gpt-4o is served from an Apache-2.0 card, upstream-echo from a
// Llama 3 fine-tune's card reviewed as llama3 at commit C1.
const cardPolicy = `
models:
  list:
    - id: gpt-4o
      card: mistralai/Mistral-7B-v0.1
      card_license: apache-2.0
      commit: 0123456
      license: Apache-2.0
      reviewed: 2026-10-01
      reviewer: jane@example.com
    - id: upstream-echo
      card: acme/Llama-3-8B-code
      card_license: llama3
      commit: ` + cardtest.C1 + `
      license: LicenseRef-Llama-3-Community
      class: restricted
      reviewed: 2026-10-01
      reviewer: jane@example.com
`

// writeCards writes the hub cache the proxy reads: Mistral at C1, and the Llama 3
// fine-tune at C1 (llama3, as reviewed) and at C2 (relicensed llama3.1), refs/main
// at relicensed ? C2 : C1.
func writeCards(t *testing.T, root string, relicensed bool) {
	t.Helper()
	cardtest.Write(t, root, "mistralai/Mistral-7B-v0.1", cardtest.C1, cardtest.Mistral)
	cardtest.Write(t, root, "meta-llama/Meta-Llama-3-8B", cardtest.C1, cardtest.Llama3)
	cardtest.Write(t, root, "acme/Llama-3-8B-code", cardtest.C2, strings.Replace(cardtest.Llama3FineTune, "license: llama3\n", "license: llama3.1\n", 1))
	cardtest.Write(t, root, "acme/Llama-3-8B-code", cardtest.C1, cardtest.Llama3FineTune)
	if relicensed {
		os.WriteFile(filepath.Join(root, "models--acme--Llama-3-8B-code", "refs", "main"), []byte(cardtest.C2), 0o644)
	}
}

func chatModel(t *testing.T, e *env, model string) *http.Response {
	t.Helper()
	b := chatBody(false, 1, "hello")
	b["model"] = model
	return post(t, e.px.URL+"/v1/chat/completions", b)
}

// TestModelCardChangeRefused: a model whose card's license and commit changed
// since the review is refused with 403 saying what changed, the mismatch gauge
// says so, /v1/models carries the card's license beside the reviewed one, and a
// reload that finds the reviewed card again lets it pass.
func TestModelCardChangeRefused(t *testing.T) {
	cache := t.TempDir()
	writeCards(t, cache, true)
	e := newEnv(t, "block", cardPolicy, func(o *Options) { o.ModelDirs = []string{cache} })
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "An original answer."})

	if resp := chatModel(t, e, "gpt-4o"); resp.Body.Close() != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("gpt-4o, card as reviewed: status %d, want 200", resp.StatusCode)
	}
	resp := chatModel(t, e, "upstream-echo")
	ae := readAPIError(t, resp)
	wantMsg := `cleanroom refuses model "upstream-echo": its model card changed since the license review: license llama3 at the review, llama3.1 now; commit ` +
		cardtest.C1 + " at the review, " + cardtest.C2 + " now (card acme/Llama-3-8B-code in "
	if resp.StatusCode != http.StatusForbidden || ae.Error.Code == nil || *ae.Error.Code != "model_card_changed" ||
		!strings.HasPrefix(ae.Error.Message, wantMsg) || !strings.Contains(ae.Error.Message, "License reviewed 2026-10-01 by jane@example.com.") {
		t.Errorf("changed card: status %d %+v\nwant 403 model_card_changed, message beginning %q", resp.StatusCode, ae.Error, wantMsg)
	}

	m := e.srv.metrics
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"upstream-echo", "acme/Llama-3-8B-code", "license"}, 1},
		{[]string{"upstream-echo", "acme/Llama-3-8B-code", "commit"}, 1},
		{[]string{"gpt-4o", "mistralai/Mistral-7B-v0.1", "license"}, 0},
		{[]string{"gpt-4o", "mistralai/Mistral-7B-v0.1", "commit"}, 0},
	} {
		if got := testutil.ToFloat64(m.cardMismatch.WithLabelValues(tt.labels...)); got != tt.want {
			t.Errorf("cleanroom_model_card_mismatch%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
	if got := testutil.ToFloat64(m.cardInfo.WithLabelValues("upstream-echo", "acme/Llama-3-8B-code", "llama3.1", "llama3", cardtest.C2)); got != 1 {
		t.Errorf("cleanroom_model_license_info of upstream-echo = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.cardInfo.WithLabelValues("unlisted", "meta-llama/Meta-Llama-3-8B", "llama3", "", cardtest.C1)); got != 1 {
		t.Errorf("cleanroom_model_license_info of an unlisted card = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.modelRequests.WithLabelValues("upstream-echo", "LicenseRef-Llama-3-Community", "restricted", "refused")); got != 1 {
		t.Errorf("refusals of upstream-echo counted %v, want 1", got)
	}

	li := modelLicense(t, e, "upstream-echo")
	if li == nil || li.Allowed || li.Card == nil || li.Card.License != "llama3.1" || li.Card.ReviewedLicense != "llama3" ||
		li.Card.Commit != cardtest.C2 || li.Card.ReviewedCommit != cardtest.C1 || li.Card.Matches || len(li.Card.Changes) != 2 ||
		!strings.Contains(li.Reason, "license llama3 at the review, llama3.1 now") {
		t.Errorf("/v1/models/upstream-echo license: %+v card %+v", li, cardOf(li))
	}
	if li := modelLicense(t, e, "gpt-4o"); li == nil || !li.Allowed || li.Card == nil || li.Card.License != "apache-2.0" ||
		li.Card.ID != "mistralai/Mistral-7B-v0.1" || !li.Card.Matches || li.Card.Class != "open" {
		t.Errorf("/v1/models/gpt-4o license: %+v card %+v", li, cardOf(li))
	}

	// The deployment is rolled back to the reviewed snapshot: a reload sees it.
	os.WriteFile(filepath.Join(cache, "models--acme--Llama-3-8B-code", "refs", "main"), []byte(cardtest.C1), 0o644)
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if resp := chatModel(t, e, "upstream-echo"); resp.Body.Close() != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("after the reload to the reviewed card: status %d, want 200", resp.StatusCode)
	}
	if got := testutil.ToFloat64(m.cardMismatch.WithLabelValues("upstream-echo", "acme/Llama-3-8B-code", "license")); got != 0 {
		t.Errorf("mismatch after the reload = %v, want 0", got)
	}

	// A card broken on reload: the reload fails, the cards read before stay.
	readme := filepath.Join(cache, "models--acme--Llama-3-8B-code", "snapshots", cardtest.C1, "README.md")
	os.WriteFile(readme, []byte("---\nlicense: [mit]\n---\n"), 0o644)
	if err := e.srv.Reload(); err == nil || !strings.Contains(err.Error(), readme+":2: license: want one value, got a list") {
		t.Errorf("reload with a malformed card: %v", err)
	}
	if resp := chatModel(t, e, "upstream-echo"); resp.Body.Close() != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("after a failed card reload: status %d, want 200 (the cards read before)", resp.StatusCode)
	}
	if got := testutil.ToFloat64(m.cardReads.WithLabelValues("failure")); got != 1 {
		t.Errorf("failed card reads %v, want 1", got)
	}
}

// TestModelCardChangeFlagged: with on_card_change: flag the model is served, and
// the change shows in the gauge and /v1/models.
func TestModelCardChangeFlagged(t *testing.T) {
	cache := t.TempDir()
	writeCards(t, cache, true)
	policy := strings.Replace(cardPolicy, "models:\n", "models:\n  on_card_change: flag\n", 1)
	e := newEnv(t, "block", policy, func(o *Options) { o.ModelDirs = []string{cache} })
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "ok"})
	if resp := chatModel(t, e, "upstream-echo"); resp.Body.Close() != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("flagged card: status %d, want 200", resp.StatusCode)
	}
	if got := testutil.ToFloat64(e.srv.metrics.cardMismatch.WithLabelValues("upstream-echo", "acme/Llama-3-8B-code", "license")); got != 1 {
		t.Errorf("mismatch = %v, want 1", got)
	}
	if li := modelLicense(t, e, "upstream-echo"); li == nil || !li.Allowed || li.Card == nil || li.Card.Matches {
		t.Errorf("/v1/models/upstream-echo license: %+v card %+v", li, cardOf(li))
	}
}

// TestModelCardErrorsAtStart: a malformed card, or a directory that is not a
// model's, stops the proxy from starting, naming the file and line.
func TestModelCardErrorsAtStart(t *testing.T) {
	dir := t.TempDir()
	card := filepath.Join(dir, "m", "README.md")
	os.MkdirAll(filepath.Dir(card), 0o755)
	os.WriteFile(card, []byte("---\nlicense: mit\nbase_model:\n  id: x\n---\n"), 0o644)
	ixDir := filepath.Join(dir, "ix")
	buildTestIndex(t, ixDir, 1)
	for _, tt := range []struct{ dir, want string }{
		{filepath.Dir(card), card + ":4: base_model: want a string or a list of strings"},
		{dir, "--model-dir: " + dir + ": no README.md and no models--* directories"},
	} {
		_, err := New(Options{Index: ixDir, Upstream: "http://127.0.0.1:1", ModelDirs: []string{tt.dir},
			AuditLog: filepath.Join(dir, "audit")}, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--model-dir %s: %v, want %q", tt.dir, err, tt.want)
		}
	}
}

// TestModelPolicyCardKeys: the review keys and the datasets section parse, and
// their mistakes are errors; CheckCards applies the policy's dataset rules.
func TestModelPolicyCardKeys(t *testing.T) {
	p, err := ParsePolicy([]byte(cardPolicy+`  datasets:
    flag:
      - id: acme/scraped-*
        reason: scraped without licenses
    allow: [the_pile_books3]
    on_flag: reject
`), Block)
	if err != nil {
		t.Fatal(err)
	}
	mp := p.Models
	if mp.OnCardChange != "refuse" || mp.OnDatasetFlag != "reject" || mp.Datasets.Flag[0].Pattern != "acme/scraped-*" ||
		len(mp.Datasets.Flag) != len(modelcard.DefaultDatasetRules)+1 || !strings.Contains(strings.Join(mp.Datasets.Allow, ","), "the_pile_books3") {
		t.Errorf("parsed %+v", mp)
	}
	root := t.TempDir()
	set, err := modelcard.Load(cardtest.Write(t, root, "acme/books", cardtest.C1, cardtest.Books3),
		cardtest.Write(t, root, "acme/scraper", cardtest.C1, "license: mit\ndatasets: [acme/scraped-web]\n"))
	if err != nil {
		t.Fatal(err)
	}
	reps := mp.CheckCards(set)
	if reps[0].Decision != modelcard.Approved || reps[1].Decision != modelcard.Rejected || !strings.Contains(strings.Join(reps[1].Reasons, "\n"), "scraped without licenses") {
		t.Errorf("books3 allowed: %s %q; scraped rejected: %s %q", reps[0].Decision, reps[0].Reasons, reps[1].Decision, reps[1].Reasons)
	}

	for _, tt := range []struct{ policy, want string }{
		{"models:\n  on_card_change: ignore\n", `on_card_change: "ignore": want refuse or flag`},
		{"models:\n  datasets:\n    on_flag: maybe\n", `on_flag: "maybe"`},
		{"models:\n  datasets:\n    flags: []\n", `unknown key "flags"`},
		{"models:\n  datasets:\n    flag:\n      - id: x\n", "want an id (a dataset id or pattern) and a reason"},
		{"models:\n  list:\n    - id: m\n      license: MIT\n      commit: main\n", `commit: want the snapshot's commit`},
		{"models:\n  list:\n    - id: m\n      license: MIT\n      card_licence: mit\n", `unknown key "card_licence"`},
	} {
		if _, err := ParsePolicy([]byte(tt.policy), Block); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.policy, err, tt.want)
		}
	}
}

// modelLicense returns the license object of GET /v1/models/ID.
func modelLicense(t *testing.T, e *env, id string) *modelLicenseInfo {
	t.Helper()
	resp, err := http.Get(e.px.URL + "/v1/models/" + id)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var one struct {
		License *modelLicenseInfo `json:"license"`
	}
	if err := json.Unmarshal(raw, &one); err != nil {
		t.Fatalf("GET /v1/models/%s: %v %s", id, err, raw)
	}
	return one.License
}

func cardOf(li *modelLicenseInfo) *cardInfo {
	if li == nil {
		return nil
	}
	return li.Card
}
