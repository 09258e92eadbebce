package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/proxy/modelcard"
	"cleanroom/proxy/modelcard/cardtest"
)

const checkPolicy = `models:
  require_known_model_license: true
  list:
    - id: mistral-7b
      card: mistralai/Mistral-7B-v0.1
      card_license: apache-2.0
      commit: 0123456
      license: Apache-2.0
      reviewed: 2026-10-01
      reviewer: jane@example.com
    - id: llama-3-8b
      card: meta-llama/Meta-Llama-3-8B
      card_license: llama3
      commit: ` + cardtest.C1 + `
      license: LicenseRef-Llama-3-Community
      class: restricted
      reviewed: 2026-10-02
      reviewer: jane@example.com
`

// TestModelsCheck runs `proxy models check` on model directories: its exit
// status, its text and its JSON record.
func TestModelsCheck(t *testing.T) {
	root := t.TempDir()
	mistral := cardtest.Write(t, root, "mistralai/Mistral-7B-v0.1", cardtest.C1, cardtest.Mistral)
	llama := cardtest.Write(t, root, "meta-llama/Meta-Llama-3-8B", cardtest.C1, cardtest.Llama3)
	nc := cardtest.Write(t, root, "CohereForAI/aya-23-8B", cardtest.C1, cardtest.AyaNC)
	policy := filepath.Join(root, "policy.yaml")
	os.WriteFile(policy, []byte(checkPolicy), 0o644)
	bad := filepath.Join(root, "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "README.md"), []byte("---\nlicense: mit\ndatasets: {books: 3}\n---\n"), 0o644)

	for _, tt := range []struct {
		name string
		args []string
		code int
		out  []string // in stdout
		err  string   // in stderr
	}{
		{"approved", []string{"check", "--policy", policy, mistral}, 0,
			[]string{"mistralai/Mistral-7B-v0.1@" + cardtest.C1 + ": APPROVED\n", "  reviewed:   2026-10-01 by jane@example.com (policy entry mistral-7b"}, ""},
		{"with conditions", []string{"check", "--policy", policy, mistral, llama}, 0,
			[]string{"meta-llama/Meta-Llama-3-8B@" + cardtest.C1 + ": APPROVED WITH CONDITIONS\n", "  condition:  a separate license is needed above 700,000,000 monthly active users"}, ""},
		{"unreviewed non-commercial", []string{"check", "--policy", policy, mistral, nc}, 1,
			[]string{"CohereForAI/aya-23-8B@" + cardtest.C1 + ": REJECTED\n", "the policy blocks non-commercial models", "has no entry for it"}, ""},
		{"without a policy", []string{"check", mistral}, 0, []string{"(no review in the policy)"}, ""},
		{"malformed card", []string{"check", "--policy", policy, bad}, 2, nil,
			"proxy models check: " + filepath.Join(bad, "README.md") + ":3: datasets: want a string or a list of strings, got a mapping"},
		{"no directory", []string{"check", "--policy", policy}, 2, nil, "usage: proxy models check"},
		{"bad format", []string{"check", "--format", "xml", mistral}, 2, nil, "usage: proxy models check"},
		{"no subcommand", []string{"list"}, 2, nil, "usage: proxy models check"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runModels(tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.err) {
				t.Errorf("exit %d, stderr %q; want %d, %q\nstdout:\n%s", code, stderr.String(), tt.code, tt.err, stdout.String())
			}
			for _, want := range tt.out {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout has no %q:\n%s", want, stdout.String())
				}
			}
		})
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"models", "check", "--policy", policy, "--format", "json", llama}); code != 0 {
		t.Errorf("proxy models check --format json: exit %d", code)
	}
	if code := runModels([]string{"check", "--policy", policy, "--format", "json", llama}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var out struct{ Models []modelcard.Report }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Models) != 1 {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	r := out.Models[0].Record
	if r.ID != "meta-llama/Meta-Llama-3-8B" || r.Commit != cardtest.C1 || r.License != "llama3" || r.URL != "https://llama.meta.com/llama3/license/" ||
		r.Class != modelcard.Restricted || r.CommercialUse == nil || !*r.CommercialUse || r.MAUThreshold != 700_000_000 ||
		r.DerivativesAllowed == nil || !*r.DerivativesAllowed || r.OutputsMayTrainModels == nil || *r.OutputsMayTrainModels ||
		r.Reviewed != "2026-10-02" || r.Reviewer != "jane@example.com" || r.PolicyEntry != "llama-3-8b" {
		t.Errorf("record %+v", r)
	}
	for _, key := range []string{`"decision": "approved with conditions"`, `"user_threshold": 700000000`, `"derivatives_allowed": true`, `"lineage": [`} {
		if !strings.Contains(stdout.String(), key) {
			t.Errorf("JSON has no %s:\n%s", key, stdout.String())
		}
	}
}
