package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireNodePackage skips the test unless node and the npm package pkg are
// installed in node/node_modules.
func requireNodePackage(t *testing.T, pkg string) string {
	t.Helper()
	node := requireNode(t)
	if _, err := os.Stat(filepath.Join("node", "node_modules", pkg, "package.json")); err != nil {
		t.Skipf("the npm package %s is not installed in proxy/sdk/node: run `make deps` (npm ci --prefix proxy/sdk/node)", pkg)
	}
	return node
}

// runNode runs node/script with args and decodes what it printed into out, or
// returns the error the client threw (a *nodeError).
func runNode(t *testing.T, pkg, script string, out any, args ...string) error {
	t.Helper()
	node := requireNodePackage(t, pkg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join("node", script)}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var e struct {
		Error *nodeError `json:"error"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &e); jerr != nil || (err != nil && e.Error == nil) {
		t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, stdout.Bytes(), stderr.Bytes())
	}
	if e.Error != nil {
		return e.Error
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("node %s printed what the test cannot read: %v\n%s", script, err, stdout.Bytes())
	}
	return nil
}

// nodeAgent runs an AgentRecord script (responses.mjs, messages.mjs, ollama.mjs).
func nodeAgent(t *testing.T, pkg, script, baseURL, mode string, stream bool, prompt string) (*agentReceived, error) {
	t.Helper()
	args := []string{"--base-url", baseURL, "--prompt", prompt}
	if mode != "" {
		args = append(args, "--mode", mode)
	}
	if stream {
		args = append(args, "--stream")
	}
	var got agentReceived
	if err := runNode(t, pkg, script, &got, args...); err != nil {
		return nil, err
	}
	return &got, nil
}

// root is the proxy's root URL, where the Anthropic and Ollama clients add their
// paths.
func (e *env) root() string { return strings.TrimSuffix(e.api, "/v1") }

// nodeResponses sends prompt with the openai package's responses.create.
func nodeResponses(t *testing.T, e *env, stream bool, prompt string) (*agentReceived, error) {
	t.Helper()
	return nodeAgent(t, "openai", "responses.mjs", e.api, "", stream, prompt)
}

// nodeMessages returns a client sending with @anthropic-ai/sdk's messages.create, or
// its messages.stream() helper with mode "helper".
func nodeMessages(mode string) func(t *testing.T, e *env, stream bool, prompt string) (*agentReceived, error) {
	return func(t *testing.T, e *env, stream bool, prompt string) (*agentReceived, error) {
		t.Helper()
		return nodeAgent(t, "@anthropic-ai/sdk", "messages.mjs", e.root(), mode, stream, prompt)
	}
}

// nodeOllama returns a client sending with the ollama package's chat or generate
// (mode).
func nodeOllama(mode string) func(t *testing.T, e *env, stream bool, prompt string) (*agentReceived, error) {
	return func(t *testing.T, e *env, stream bool, prompt string) (*agentReceived, error) {
		t.Helper()
		return nodeAgent(t, "ollama", "ollama.mjs", e.root(), mode, stream, prompt)
	}
}

// nodePost POSTs to path under api with the openai package's client.post.
func nodePost(t *testing.T, api, path string) (json.RawMessage, error) {
	t.Helper()
	var got struct {
		Body json.RawMessage `json:"body"`
	}
	if err := runNode(t, "openai", "post.mjs", &got, "--base-url", api, "--mode", path, "--prompt", "hello"); err != nil {
		return nil, err
	}
	return got.Body, nil
}
