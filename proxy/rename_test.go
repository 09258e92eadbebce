package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/index"
	"cleanroom/index/indextest"
	"cleanroom/proxy/upstream"
)

// renameIdents returns code with every identifier renamed consistently, as a
// model that paraphrases copied code does.
func renameIdents(code string) string {
	var b strings.Builder
	names := map[string]string{}
	prev := 0
	for _, tk := range fingerprint.Tokenize(fingerprint.C, []byte(code)) {
		if tk.Kind != fingerprint.Ident || tk.InLit {
			continue
		}
		id := code[tk.Off:tk.End]
		if names[id] == "" {
			names[id] = fmt.Sprintf("v%d_%s", len(names), strings.ToUpper(id[:1]))
		}
		b.WriteString(code[prev:tk.Off])
		b.WriteString(names[id])
		prev = int(tk.End)
	}
	b.WriteString(code[prev:])
	return b.String()
}

// longestRenamed returns the longest run of text that ix holds up to a consistent
// renaming, in tokens.
func longestRenamed(ix *index.Index, text string) int {
	m := ix.NewMatcher(index.MatchOptions{Rename: true, MinTokens: 1, MaxPostings: -1, MinEvidence: -1})
	m.Feed(ix.Fingerprint(fingerprint.Markdown, []byte(text), true))
	n := 0
	for _, r := range m.Runs(1) {
		n = max(n, r.End-r.Start)
	}
	return n
}

// TestRename: with --rename the proxy blocks a copy whose identifiers were renamed,
// holding text back for the rename-robust threshold; without, such a copy passes;
// an exact copy is blocked either way; an index without rename-robust
// fingerprints cannot serve --rename.
func TestRename(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ix")
	texts, err := indextest.BuildRename(dir, 3, indextest.Repo{Name: "gen", License: "GPL-2.0-only", Files: 4, Funcs: 4})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.Open(dir, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	rp, _ := ix.RenameParams()
	code := excerpt(texts["gen"][1], 3, 60)
	renamed := renameIdents(code)
	if indextest.LongestRun(ix, renamed) >= ix.Params().Threshold() {
		t.Fatalf("the renamed copy still matches exactly")
	}
	up := upstream.New()
	up.Log = slog.New(slog.DiscardHandler)
	upSrv := httptestServer(t, up)
	for _, tc := range []struct {
		rename    bool
		answer    string
		wantBlock bool
	}{
		{false, renamed, false},
		{true, renamed, true},
		{true, code, true},
		{false, code, true},
	} {
		up.Script = upstream.FixedScript(upstream.Reply{Content: "Here:\n\n```c\n" + tc.answer + "```\n"})
		s, err := New(Options{Index: dir, Upstream: upSrv.URL, Rename: tc.rename, AuditLog: filepath.Join(t.TempDir(), "a"), Poll: -1},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		px := httptestServer(t, s.Handler())
		got := readStream(t, post(t, px.URL+"/v1/chat/completions", chatBody(true, 1, "write it")))
		blocked := got.finish[0] == "content_filter"
		if blocked != tc.wantBlock {
			t.Errorf("rename %v, renamed answer %v: finish %q, want blocked %v", tc.rename, tc.answer == renamed, got.finish[0], tc.wantBlock)
		}
		if tc.rename {
			if n := longestRenamed(ix, got.content[0]); n >= rp.Threshold() {
				t.Errorf("with --rename the client got a renamed run of %d tokens (rename threshold %d)", n, rp.Threshold())
			}
		}
		if n := indextest.LongestRun(ix, got.content[0]); n >= ix.Params().Threshold() {
			t.Errorf("rename %v: the client got an exact run of %d tokens", tc.rename, n)
		}
		s.Close()
	}
	// An index without rename-robust fingerprints.
	plain := filepath.Join(t.TempDir(), "plain")
	if _, err := indextest.Build(plain, 3, indextest.Repo{Name: "gen", License: "GPL-2.0-only", Files: 1, Funcs: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Index: plain, Upstream: upSrv.URL, Rename: true, AuditLog: filepath.Join(t.TempDir(), "a")}, nil); err == nil || !strings.Contains(err.Error(), "--rename") {
		t.Errorf("--rename on an index without rename-robust fingerprints: %v", err)
	}
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
