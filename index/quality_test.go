package index

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
)

var renameParams = fingerprint.Params{K: 20, W: 31}

// renameAll renames every identifier of a Go text that is not a keyword, the same
// way each time it occurs (consistently) or differently each time.
func renameAll(text string, consistent bool) string {
	toks := fingerprint.Tokenize(fingerprint.Go, []byte(text))
	var b strings.Builder
	prev, n := 0, 0
	names := map[string]string{}
	for _, t := range toks {
		if t.Kind != fingerprint.Ident {
			continue
		}
		b.WriteString(text[prev:t.Off])
		id := text[t.Off:t.End]
		name, ok := names[id]
		if !ok || !consistent {
			n++
			name = fmt.Sprintf("v%d_%s", n, strings.ToUpper(id[:1]))
			names[id] = name
		}
		b.WriteString(name)
		prev = int(t.End)
	}
	b.WriteString(text[prev:])
	return b.String()
}

// goFiles reads the Go files of some packages of Go's own tree.
func goFiles(t *testing.T, pkgs ...string) map[string]string {
	files := map[string]string{}
	for _, p := range pkgs {
		paths, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", p, "*.go"))
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			files[p+"/"+filepath.Base(path)] = string(b)
		}
	}
	if len(files) == 0 {
		t.Skip("Go's source tree is not there")
	}
	return files
}

// TestRenameRobustMatching indexes real code (Go's strings and bytes packages, as if
// they were copyleft) and checks that rename-robust matching finds an excerpt whose
// identifiers were all renamed consistently, and not one renamed inconsistently, nor
// code of other packages.
func TestRenameRobustMatching(t *testing.T) {
	opts := BuildOptions{Params: fingerprint.DefaultParams, Rename: renameParams}
	dir := t.TempDir()
	b, _ := NewBuilder(dir, opts)
	r := b.AddRepo(Repo{Name: "go"})
	indexed := goFiles(t, "strings", "bytes")
	var names []string
	for name := range indexed {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		d := docOf(opts, fingerprint.Go, indexed[name])
		d.Repo, d.Path = r, name
		b.Add(d)
	}
	if _, err := b.Finish(nil); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if rp, ok := ix.RenameParams(); !ok || rp != renameParams {
		t.Fatalf("index rename parameters %v %v", rp, ok)
	}
	src := indexed["strings/replace.go"]
	start := strings.Index(src, "func (r *genericReplacer) lookup(")
	excerpt := src[start : start+strings.Index(src[start:], "\n}\n")+3]
	renamed := renameAll(excerpt, true)
	if ms := ix.Scan(fingerprint.Go, []byte(renamed), MatchOptions{}); len(ms) != 0 {
		t.Errorf("exact matching found renamed code: %+v", ms)
	}
	ms := ix.Scan(fingerprint.Go, []byte(renamed), MatchOptions{Rename: true})
	want := len(fingerprint.Tokenize(fingerprint.Go, []byte(renamed)))
	if len(ms) != 1 || ms[0].Source.Path != "strings/replace.go" || ms[0].Tokens < want-2 {
		t.Fatalf("rename-robust matching of consistently renamed code: %+v, want strings/replace.go, %d tokens", ms, want)
	}
	if ms := ix.Scan(fingerprint.Go, []byte(renameAll(excerpt, false)), MatchOptions{Rename: true}); len(ms) != 0 {
		t.Errorf("inconsistently renamed code matched: %+v", ms)
	}
	for name, text := range goFiles(t, "sort", "container/list", "path") {
		if ms := ix.Scan(fingerprint.Go, []byte(text), MatchOptions{Rename: true}); len(ms) != 0 {
			t.Errorf("%s, not indexed, matched in rename-robust mode: %s lines %d-%d", name, ms[0].Source.Path, ms[0].Src.StartLine, ms[0].Src.EndLine)
		}
	}
}

func TestAllowSet(t *testing.T) {
	dir := t.TempDir()
	opts := BuildOptions{Params: fingerprint.DefaultParams, Rename: renameParams}
	b, err := NewBuilder(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	g := gencode.New(3)
	r := b.AddRepo(Repo{Name: "gpl", License: "GPL-2.0-only"})
	shared := g.CFunc(12) // in the GPL corpus and in the permissive reference corpus
	own := g.CFunc(12)
	d := docOf(opts, fingerprint.C, shared+"\n"+own)
	d.Repo, d.Path = r, "a.c"
	b.Add(d)
	ref := docOf(opts, fingerprint.C, g.CFunc(5)+shared)
	var exact, renamed []uint64
	for _, p := range ref.Postings {
		exact = append(exact, p.Hash)
	}
	for _, p := range ref.Renamed {
		renamed = append(renamed, p.Hash)
	}
	b.AddAllow("reference", exact, renamed)
	if _, err := b.Finish(nil); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.Manifest.Allow == nil || ix.Manifest.Allow.Fingerprints == 0 {
		t.Fatalf("manifest allow: %+v", ix.Manifest.Allow)
	}
	for _, rename := range []bool{false, true} {
		if ms := ix.Scan(fingerprint.C, []byte(shared), MatchOptions{Rename: rename}); len(ms) != 0 {
			t.Errorf("rename=%v: code in the allow set matched: %+v", rename, ms)
		}
		if ms := ix.Scan(fingerprint.C, []byte(shared), MatchOptions{Rename: rename, NoAllow: true}); len(ms) != 1 {
			t.Errorf("rename=%v: with NoAllow the shared code did not match", rename)
		}
		if ms := ix.Scan(fingerprint.C, []byte(own), MatchOptions{Rename: rename}); len(ms) != 1 {
			t.Errorf("rename=%v: code not in the allow set did not match", rename)
		}
	}
	if problems, err := Verify(dir); err != nil || len(problems) != 0 {
		t.Errorf("Verify: %v %v", problems, err)
	}
}

var numRE = regexp.MustCompile(`0x[0-9a-f]+`)

// TestTablesAreNotEvidence: a table of constants matches token for token, yet says
// nothing about copying.
func TestTablesAreNotEvidence(t *testing.T) {
	var table strings.Builder
	table.WriteString("static const unsigned int table[] = {\n")
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&table, "\t0x%08x, 0x%08x, 0x%08x, 0x%08x,\n", i*7919, i*104729, i*15485863, i*32452843)
	}
	table.WriteString("};\n")
	dir := t.TempDir()
	b, _ := NewBuilder(dir, BuildOptions{Params: fingerprint.DefaultParams})
	r := b.AddRepo(Repo{Name: "gpl"})
	d := docOf(BuildOptions{Params: fingerprint.DefaultParams}, fingerprint.C, table.String())
	d.Repo = r
	b.Add(d)
	b.Finish(nil)
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	rows := strings.Join(strings.SplitAfter(table.String(), "\n")[5:30], "")
	if ms := ix.Scan(fingerprint.C, []byte(rows), MatchOptions{}); len(ms) != 0 {
		t.Errorf("a table of numbers was reported: %+v", ms)
	}
	if ms := ix.Scan(fingerprint.C, []byte(rows), MatchOptions{MinEvidence: -1}); len(ms) != 1 {
		t.Errorf("with no evidence rule, the table rows were not found")
	}
	_ = numRE
}

func TestKGramFilter(t *testing.T) {
	dir := t.TempDir()
	opts := BuildOptions{Params: fingerprint.DefaultParams}
	b, _ := NewBuilder(dir, opts)
	b.InitKGrams(20000, 10)
	r := b.AddRepo(Repo{Name: "gpl"})
	g := gencode.New(5)
	var all []uint64
	for i := 0; i < 20; i++ {
		s := fingerprint.NewStream(opts.Params, fingerprint.C)
		s.CollectKGrams()
		s.Write([]byte(g.CFile("", 5)))
		s.Close()
		d := NewDoc(s.Tokens, s.Fingerprints)
		d.Repo = r
		b.Add(d)
		b.AddKGrams(s.KGrams)
		all = append(all, s.KGrams...)
	}
	m, err := b.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if !ix.HasKGramFilter() || m.KGrams.KGrams != int64(len(all)) {
		t.Fatalf("filter: %v, manifest %+v", ix.HasKGramFilter(), m.KGrams)
	}
	for _, h := range all {
		if !ix.MayHaveKGram(h) {
			t.Fatalf("the filter lost k-gram %x", h)
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	fp := 0
	for i := 0; i < 100000; i++ {
		if ix.MayHaveKGram(rng.Uint64()) {
			fp++
		}
	}
	if rate := float64(fp) / 100000; rate > 3*m.KGrams.FalsePositives+0.005 || rate > 0.05 {
		t.Errorf("false positive rate %.4f, the manifest estimates %.4f", rate, m.KGrams.FalsePositives)
	}
	if problems, err := Verify(dir); err != nil || len(problems) != 0 {
		t.Errorf("Verify: %v %v", problems, err)
	}
}
