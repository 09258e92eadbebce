package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
	"cleanroom/index"
	"cleanroom/index/indextest"
	"cleanroom/proxy/upstream"
)

// TestUnprovenRunsWait: a copied run that begins with a stretch the evidence rules
// set aside (a table of numbers) counts only once enough code follows it; until
// then the proxy must not let more than t-1 of its tokens out, whatever the
// chunking, or the client gets the table and the first lines of code before the
// cut.
func TestUnprovenRunsWait(t *testing.T) {
	var table strings.Builder
	table.WriteString("static const unsigned char crc_table[] = {\n")
	for i := range 96 {
		fmt.Fprintf(&table, "0x%02x, ", (i*37+11)%256)
		if i%8 == 7 {
			table.WriteString("\n")
		}
	}
	table.WriteString("};\n\n")
	file := table.String() + gencode.New(5).CFile("", 3)
	dir := filepath.Join(t.TempDir(), "ix")
	if _, err := indextest.Build(dir, 1, indextest.Repo{Name: "tables", License: "GPL-2.0-only", Texts: []string{file}}); err != nil {
		t.Fatal(err)
	}
	ix, err := index.Open(dir, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	thr := ix.Params().Threshold()
	answer := "Here is a table-driven version:\n\n```c\n" + file + "```\n"
	for seed := range int64(12) {
		up := upstream.New()
		up.Seed = seed
		up.Log = slog.New(slog.DiscardHandler)
		up.Script = upstream.FixedScript(upstream.Reply{Content: answer})
		us := httptest.NewServer(up)
		s, err := New(Options{Index: dir, Upstream: us.URL, AuditLog: filepath.Join(t.TempDir(), "a.jsonl"), Poll: -1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		px := httptest.NewServer(s.Handler())
		got := readStream(t, post(t, px.URL+"/v1/chat/completions", chatBody(true, 1, "a crc function")))
		if n := rawLongest(ix, got.content[0]); n >= thr || got.finish[0] != "content_filter" {
			t.Errorf("seed %d: the client got a run of %d indexed tokens (t = %d), finish %q", seed, n, thr, got.finish[0])
		}
		px.Close()
		s.Close()
		us.Close()
	}
}

// rawLongest returns the longest run of text, read as markdown, that ix holds
// exactly, evidence or not.
func rawLongest(ix *index.Index, text string) int {
	m := ix.NewMatcher(index.MatchOptions{MinTokens: 1, MaxPostings: -1, MinEvidence: -1, NoAllow: true})
	m.Feed(ix.Fingerprint(fingerprint.Markdown, []byte(text), false))
	n := 0
	for _, r := range m.Runs(1) {
		n = max(n, r.End-r.Start)
	}
	return n
}
