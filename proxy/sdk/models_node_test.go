package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cleanroom/proxy"
	"cleanroom/proxy/modelcard/cardtest"
)

// TestNodeModelCardRefusal: the official openai npm client asks for a model whose
// card's license changed since its review; the proxy refuses it with 403 in the
// OpenAI shape, and the client's error says what changed. A model whose card is
// as reviewed is answered.
func TestNodeModelCardRefusal(t *testing.T) {
	node := requireNode(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "hub")
	cardtest.Write(t, cache, "mistralai/Mistral-7B-v0.1", cardtest.C1, cardtest.Mistral)
	cardtest.Write(t, cache, "acme/Llama-3-8B-code", cardtest.C2,
		strings.Replace(cardtest.Llama3FineTune, "license: llama3\n", "license: llama3.1\n", 1))
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte(`models:
  list:
    - id: gpt-4o
      card: mistralai/Mistral-7B-v0.1
      card_license: apache-2.0
      license: Apache-2.0
    - id: upstream-echo
      card: acme/Llama-3-8B-code
      card_license: llama3
      commit: `+cardtest.C1+`
      license: LicenseRef-Llama-3-Community
      class: restricted
      reviewed: 2026-10-01
      reviewer: jane@example.com
`), 0o644)
	up := newUpstream(1, "An original answer.")
	upSrv := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); upSrv.Close() })
	s, err := proxy.New(proxy.Options{Index: gen.dir, Upstream: upSrv.URL, PolicyFile: policy, ModelDirs: []string{cache},
		AuditLog: filepath.Join(dir, "audit.jsonl")}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(s.Handler())
	t.Cleanup(func() { px.Close(); s.Close() })

	chat := func(model string) (map[string]any, *nodeError) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, filepath.Join("node", "chat.mjs"), "--base-url", px.URL+"/v1", "--model", model)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		runErr := cmd.Run()
		var out struct {
			Error   *nodeError       `json:"error"`
			Choices []map[string]any `json:"choices"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || (runErr != nil && out.Error == nil) {
			t.Fatalf("node chat.mjs: %v %v\nstdout: %s\nstderr: %s", runErr, err, stdout.Bytes(), stderr.Bytes())
		}
		if out.Error != nil {
			return nil, out.Error
		}
		return out.Choices[0], nil
	}
	_, ne := chat("upstream-echo")
	want := `cleanroom refuses model "upstream-echo": its model card changed since the license review: license llama3 at the review, llama3.1 now; commit ` +
		cardtest.C1 + " at the review, " + cardtest.C2 + " now"
	if ne == nil || ne.Status != 403 || ne.Name != "PermissionDeniedError" || !strings.Contains(ne.Message, want) ||
		!strings.Contains(ne.Message, "License reviewed 2026-10-01 by jane@example.com.") {
		t.Errorf("the client's error: %+v\nwant a 403 PermissionDeniedError saying %q", ne, want)
	} else {
		t.Logf("the openai client raised: %s", ne.Message)
	}
	if c, ne := chat("gpt-4o"); ne != nil || c["content"] != "An original answer." {
		t.Errorf("a model whose card is as reviewed: %+v %v", c, ne)
	}
}
