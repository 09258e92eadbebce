package index

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
)

// testCorpus is generated C: files[i] is document i of the index built from it.
type testCorpus struct {
	dir   string
	files []string
	ix    *Index
}

func buildCorpus(t testing.TB, nfiles int, opts BuildOptions) *testCorpus {
	t.Helper()
	g := gencode.New(42)
	c := &testCorpus{dir: t.TempDir()}
	if opts.Params == (fingerprint.Params{}) {
		opts.Params = fingerprint.DefaultParams
	}
	b, err := NewBuilder(c.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	repo := b.AddRepo(Repo{Name: "gen", License: "GPL-2.0-only", URL: "https://example.org/gen/{path}#L{start}-L{end}"})
	for i := 0; i < nfiles; i++ {
		text := g.CFile("// SPDX-License-Identifier: GPL-2.0-only\n", 3+i%5)
		c.files = append(c.files, text)
		d := docOf(opts, fingerprint.C, text)
		d.Repo, d.Path, d.License, d.LicenseFrom, d.Lang, d.Size = repo, fmt.Sprintf("src/f%03d.c", i), "GPL-2.0-only", "spdx-line", "c", int64(len(text))
		if err := b.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Finish(nil); err != nil {
		t.Fatal(err)
	}
	c.ix, err = Open(c.dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ix.Close() })
	return c
}

// summary renders matches for comparison.
func summary(ms []Match) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s %s %v %v %d %d %d\n", m.Source.Repo.Name, m.Source.Path, m.Query, m.Src, m.Tokens, m.Runs, m.Others)
	}
	return b.String()
}

// docOf fingerprints a text as the build options ask.
func docOf(opts BuildOptions, l fingerprint.Lang, text string) *Doc {
	s := fingerprint.NewStream(opts.Params, l)
	if opts.Rename.K > 0 {
		s.EnableRename(opts.Rename)
	}
	s.Write([]byte(text))
	s.Close()
	d := NewDoc(s.Tokens, s.Fingerprints)
	if opts.Rename.K > 0 {
		d.AddRenamed(s.Tokens, s.Renamed)
	}
	return d
}

// lines returns lines [a, b] (1-based) of text.
func lines(text string, a, b int) string {
	ls := strings.SplitAfter(text, "\n")
	return strings.Join(ls[a-1:b], "")
}

var commentRE = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)

// reindent strips comments and re-indents with spaces, as a model might.
func reindent(s string) string {
	s = commentRE.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "\t", "    ")
	return strings.ReplaceAll(s, "\n\n", "\n")
}

func TestScanFindsExcerpt(t *testing.T) {
	c := buildCorpus(t, 40, BuildOptions{})
	doc := 17
	src := c.files[doc]
	excerpt := reindent(lines(src, 10, 40))
	query := "Here is a helper you can use:\n\n```c\n" + excerpt + "```\n\nIt walks the list.\n"
	ms := c.ix.Scan(fingerprint.Markdown, []byte(query), MatchOptions{})
	if len(ms) != 1 {
		t.Fatalf("got %d matches, want 1: %+v", len(ms), ms)
	}
	m := ms[0]
	if m.Doc != doc || m.Source.Path != "src/f017.c" || m.Source.License != "GPL-2.0-only" || m.Source.Repo.Name != "gen" {
		t.Errorf("matched doc %d %s (%s, repo %s), want %d src/f017.c", m.Doc, m.Source.Path, m.Source.License, m.Source.Repo.Name, doc)
	}
	// The excerpt's tokens all match, from its first line to its last.
	wantToks := len(fingerprint.Tokenize(fingerprint.C, []byte(excerpt)))
	if m.Tokens != wantToks || m.Runs != 1 {
		t.Errorf("matched %d tokens in %d runs, want %d in 1", m.Tokens, m.Runs, wantToks)
	}
	// Source lines: the excerpt's first and last line that hold code.
	firstCode, lastCode := 10, 40
	for strings.TrimSpace(commentRE.ReplaceAllString(lines(src, firstCode, firstCode), "")) == "" {
		firstCode++
	}
	for strings.TrimSpace(commentRE.ReplaceAllString(lines(src, lastCode, lastCode), "")) == "" {
		lastCode--
	}
	if m.Src.StartLine != firstCode || m.Src.EndLine != lastCode {
		t.Errorf("source lines %d-%d, want %d-%d", m.Src.StartLine, m.Src.EndLine, firstCode, lastCode)
	}
	if got, want := query[m.Query.StartOff:m.Query.EndOff], strings.TrimSpace(excerpt); got != want {
		t.Errorf("query bytes %d..%d = %q, want the excerpt %q", m.Query.StartOff, m.Query.EndOff, got, want)
	}
	if m.Query.StartLine != 4 {
		t.Errorf("query start line %d, want 4", m.Query.StartLine)
	}
	if want := fmt.Sprintf("https://example.org/gen/src/f017.c#L%d-L%d", firstCode, lastCode); m.URL() != want {
		t.Errorf("URL %q, want %q", m.URL(), want)
	}
}

func TestScanThreshold(t *testing.T) {
	c := buildCorpus(t, 20, BuildOptions{})
	toks := fingerprint.Tokenize(fingerprint.C, []byte(c.files[3]))
	thr := c.ix.Params().Threshold()
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 200; trial++ {
		n := thr - 1 + trial%2 // just below, then exactly at, the threshold
		// Passages start at a line's first token, as quoted code does (one that starts
		// inside a string literal reads its quotes the other way round).
		start := rng.IntN(len(toks) - n)
		for start > 0 && toks[start-1].Line == toks[start].Line {
			start--
		}
		passage := c.files[3][toks[start].Off:toks[start+n-1].End]
		// Surround it with prose so that nothing before or after can extend it.
		// (Prose that no generated token equals; a token equal to the source's
		// neighbour would rightly extend the match.)
		query := "Consider this\n```c\n" + passage + "\n```\nThat is all\n"
		ms := c.ix.Scan(fingerprint.Markdown, []byte(query), MatchOptions{})
		if n < thr && len(ms) != 0 {
			t.Fatalf("a passage of %d tokens (< t=%d) was reported: %+v", n, thr, ms[0])
		}
		if n >= thr && (len(ms) != 1 || ms[0].Tokens < n) {
			t.Fatalf("a passage of %d tokens (t=%d) was not reported in full: %+v", n, thr, ms)
		}
	}
}

func TestScanUnrelated(t *testing.T) {
	c := buildCorpus(t, 30, BuildOptions{})
	g := gencode.New(7) // another seed: other identifiers, same style
	text := g.CFile("", 20)
	if ms := c.ix.Scan(fingerprint.C, []byte(text), MatchOptions{}); len(ms) != 0 {
		t.Errorf("unrelated code matched: %+v", ms[0])
	}
}

func TestStreamingMatcherEqualsScan(t *testing.T) {
	c := buildCorpus(t, 30, BuildOptions{})
	rng := rand.New(rand.NewPCG(2, 2))
	g := gencode.New(9)
	for trial := 0; trial < 30; trial++ {
		src := c.files[rng.IntN(len(c.files))]
		ls := strings.SplitAfter(src, "\n")
		a := rng.IntN(len(ls) / 2)
		text := g.CFunc(5) + strings.Join(ls[a:a+10+rng.IntN(len(ls)/2)], "") + g.CFunc(3)
		want := c.ix.Scan(fingerprint.C, []byte(text), MatchOptions{})
		s := fingerprint.NewStream(c.ix.Params(), fingerprint.C)
		m := c.ix.NewMatcher(MatchOptions{})
		for off := 0; off < len(text); {
			n := min(1+rng.IntN(30), len(text)-off)
			s.Write([]byte(text[off : off+n]))
			off += n
			m.Update(s.Tokens, s.Fingerprints)
		}
		s.Close()
		m.Update(s.Tokens, s.Fingerprints)
		got := m.Matches()
		if summary(got) != summary(want) {
			t.Fatalf("trial %d: streamed\n%+v\nwhole\n%+v", trial, got, want)
		}
	}
}

func TestShardsAreTransparent(t *testing.T) {
	one := buildCorpus(t, 30, BuildOptions{})
	many := buildCorpus(t, 30, BuildOptions{MaxShardPostings: 300})
	if len(many.ix.Manifest.Shards) < 5 {
		t.Fatalf("expected many shards, got %d", len(many.ix.Manifest.Shards))
	}
	if one.ix.NumPostings() != many.ix.NumPostings() || one.ix.NumDocs() != many.ix.NumDocs() {
		t.Fatalf("postings %d vs %d, docs %d vs %d", one.ix.NumPostings(), many.ix.NumPostings(), one.ix.NumDocs(), many.ix.NumDocs())
	}
	for i := 0; i < 30; i += 7 {
		q := one.files[i]
		a := one.ix.Scan(fingerprint.C, []byte(q), MatchOptions{})
		b := many.ix.Scan(fingerprint.C, []byte(q), MatchOptions{})
		if summary(a) != summary(b) {
			t.Errorf("file %d: one shard\n%+v\nmany shards\n%+v", i, a, b)
		}
		if len(a) != 1 || a[0].Doc != i || a[0].Source.Path != fmt.Sprintf("src/f%03d.c", i) {
			t.Errorf("file %d: whole-file scan found %+v", i, a)
		}
	}
}

func TestLineTable(t *testing.T) {
	text := "a b\n\nc\n  d e\n\n\nf"
	toks := fingerprint.Tokenize(fingerprint.Text, []byte(text))
	lt := lineTable(appendLineTable(nil, toks))
	for i := range toks {
		for j := i; j < len(toks); j++ {
			la, lb := lt.lines(i, j)
			if la != int(toks[i].Line) || lb != int(toks[j].Line) {
				t.Errorf("lines(%d, %d) = %d, %d; want %d, %d", i, j, la, lb, toks[i].Line, toks[j].Line)
			}
		}
	}
}

func TestDocRoundTrip(t *testing.T) {
	text := gencode.New(1).CFile("", 3)
	d := NewDoc(fingerprint.Fingerprints(fingerprint.DefaultParams, fingerprint.C, []byte(text)))
	d.Repo, d.Path, d.License, d.LicenseFrom, d.Lang, d.Size = 3, "a/b.c", "GPL-2.0-only", "notice", "c", 99
	b, _ := d.AppendBinary(nil)
	var e Doc
	if err := e.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*d) != fmt.Sprint(e) {
		t.Errorf("round trip changed the document")
	}
	if err := e.UnmarshalBinary(b[:len(b)-1]); err == nil {
		t.Errorf("a truncated document decoded without error")
	}
}

// shardFile returns the path of the first shard of the index in dir.
func shardFile(t *testing.T, dir string) string {
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, m.Shards[0].File)
}

func TestCorruptionIsDetected(t *testing.T) {
	c := buildCorpus(t, 10, BuildOptions{})
	c.ix.Close()
	path := shardFile(t, c.dir)
	orig, _ := os.ReadFile(path)
	cont, err := parseContainer(orig)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte inside each section, and in the header, TOC and footer.
	var offsets []int
	for _, tag := range cont.order {
		s := cont.toc[tag]
		offsets = append(offsets, int(s.off+s.stored/2))
	}
	offsets = append(offsets, 3, len(orig)-footerSize-5, len(orig)-3)
	for _, off := range offsets {
		bad := append([]byte(nil), orig...)
		bad[off] ^= 0x40
		os.WriteFile(path, bad, 0o644)
		problems, err := Verify(c.dir)
		if err != nil || len(problems) != 1 || !errors.Is(problems[0], ErrCorrupt) {
			t.Errorf("byte %d flipped: Verify = %v, %v; want one ErrCorrupt", off, problems, err)
		}
		if _, err := Open(c.dir, OpenOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d flipped: Open error %v, want ErrCorrupt", off, err)
		}
	}
	for _, n := range []int{0, 10, len(orig) / 2, len(orig) - 1} {
		os.WriteFile(path, orig[:n], 0o644)
		if problems, err := Verify(c.dir); err != nil || len(problems) != 1 {
			t.Errorf("truncated to %d bytes: Verify = %v, %v", n, problems, err)
		}
		if _, err := Open(c.dir, OpenOptions{}); err == nil {
			t.Errorf("truncated to %d bytes: Open succeeded", n)
		}
	}
	os.WriteFile(path, orig, 0o644)
	if problems, err := Verify(c.dir); err != nil || len(problems) != 0 {
		t.Fatalf("restored shard: Verify = %v, %v", problems, err)
	}
}

func TestVersionAndParamsAreChecked(t *testing.T) {
	c := buildCorpus(t, 5, BuildOptions{})
	c.ix.Close()
	path := shardFile(t, c.dir)
	orig, _ := os.ReadFile(path)
	// A shard that needs a newer reader.
	bad := append([]byte(nil), orig...)
	bad[12] = FormatVersion + 1
	if _, err := parseShard("x", bad, false); !errors.Is(err, ErrVersion) {
		t.Errorf("min reader version %d: error %v, want ErrVersion", FormatVersion+1, err)
	}
	mpath := filepath.Join(c.dir, ManifestName)
	mj, _ := os.ReadFile(mpath)
	for _, edit := range []struct{ from, to string }{{`"k": 16`, `"k": 15`}, {`"tokenizer": 2`, `"tokenizer": 99`}} {
		os.WriteFile(mpath, []byte(strings.Replace(string(mj), edit.from, edit.to, 1)), 0o644)
		if _, err := Open(c.dir, OpenOptions{}); !errors.Is(err, ErrParams) {
			t.Errorf("manifest with %s: error %v, want ErrParams", edit.to, err)
		}
	}
	os.WriteFile(mpath, mj, 0o644)
	ix, err := Open(c.dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.Manifest.CheckParams(fingerprint.Params{K: 10, W: 10}); !errors.Is(err, ErrParams) {
		t.Errorf("CheckParams with other params: %v", err)
	}
}

func TestRebuildReplacesShards(t *testing.T) {
	c := buildCorpus(t, 5, BuildOptions{})
	old := shardFile(t, c.dir)
	b, err := NewBuilder(c.dir, BuildOptions{Params: fingerprint.DefaultParams})
	if err != nil {
		t.Fatal(err)
	}
	r := b.AddRepo(Repo{Name: "new"})
	d := NewDoc(fingerprint.Fingerprints(fingerprint.DefaultParams, fingerprint.C, []byte(c.files[0])))
	d.Repo, d.Path = r, "only.c"
	b.Add(d)
	if _, err := b.Finish(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old shard %s still there after a rebuild", old)
	}
	// The old index, opened before, still answers from its mapping.
	if ms := c.ix.Scan(fingerprint.C, []byte(c.files[2]), MatchOptions{}); len(ms) != 1 {
		t.Errorf("old index after rebuild: %d matches", len(ms))
	}
	ix, err := Open(c.dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.NumDocs() != 1 || ix.Doc(0).Path != "only.c" {
		t.Errorf("new index has %d docs", ix.NumDocs())
	}
}
