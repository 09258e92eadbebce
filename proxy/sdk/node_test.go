package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// requireNode skips the test unless node and the openai package are installed.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the openai npm client tests need Node.js 20 or later")
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "openai", "package.json")); err != nil {
		t.Skip("proxy/sdk/node/node_modules is not installed: run `make deps` (npm ci --prefix proxy/sdk/node)")
	}
	return node
}

// nodeError is an error the openai npm package threw, as node/lib.mjs prints it.
type nodeError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Status  int    `json:"status"` // the HTTP status of an APIError; 0 for none
}

func (e *nodeError) Error() string {
	return fmt.Sprintf("%s (status %d): %s", e.Name, e.Status, e.Message)
}

// nodeClient sends r to the proxy at api with the openai npm package (node/chat.mjs
// or node/completions.mjs) and returns what the script printed: what it received,
// or the error the client threw (a *nodeError).
func nodeClient(t *testing.T, api string, r request) (*received, error) {
	t.Helper()
	node := requireNode(t)
	script := map[string]string{"chat": "chat.mjs", "completions": "completions.mjs"}[r.endpoint]
	args := []string{filepath.Join("node", script), "--base-url", api, "--n", strconv.Itoa(r.n), "--prompt", r.prompt}
	if r.stream {
		args = append(args, "--stream")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var out struct {
		received
		Error *nodeError `json:"error"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &out); jerr != nil || (err != nil && out.Error == nil) {
		t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, stdout.Bytes(), stderr.Bytes())
	}
	if out.Error != nil {
		return nil, out.Error
	}
	return &out.received, nil
}
