package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"cleanroom/corpus"
	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
	"cleanroom/index/redistest"
)

var indexerBin string

// TestMain builds the indexer once; the tests run it as users do.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "indexer-test")
	if err != nil {
		panic(err)
	}
	indexerBin = filepath.Join(dir, "indexer")
	out, err := exec.Command("go", "build", "-o", indexerBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	redistest.Shutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(indexerBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("indexer %v: %v", args, err)
	}
	return r
}

type report struct {
	Matches []struct {
		File      string `json:"file"`
		StartLine int    `json:"start_line"`
		EndLine   int    `json:"end_line"`
		Tokens    int    `json:"tokens"`
		Source    struct {
			Repo        string `json:"repo"`
			Path        string `json:"path"`
			StartLine   int    `json:"start_line"`
			EndLine     int    `json:"end_line"`
			License     string `json:"license"`
			LicenseFrom string `json:"license_from"`
		} `json:"source"`
	} `json:"matches"`
	Files int `json:"files"`
}

// scan runs `indexer scan --format json` and checks its exit status against the
// matches it printed.
func scan(t *testing.T, ix, stdin string, args ...string) report {
	t.Helper()
	r := run(t, stdin, append([]string{"scan", "--index", ix, "--format", "json"}, args...)...)
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("scan %v: exit %d, bad JSON %v:\n%s\n%s", args, r.code, err, r.stdout, r.stderr)
	}
	want := 0
	if len(rep.Matches) > 0 {
		want = 1
	}
	if r.code != want {
		t.Fatalf("scan %v: exit %d with %d matches, want exit %d; stderr: %s", args, r.code, len(rep.Matches), want, r.stderr)
	}
	return rep
}

var (
	cComment    = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)
	lispComment = regexp.MustCompile(`;[^\n"]*`)
)

// excerpt returns lines [a, b] of text, a file in language l, re-indented with spaces,
// without comments or blank lines, as a model that regurgitates code often writes it,
// and the lines a match of it names in text: those of the first and the last token of
// [a, b] as the project's tokenizer reads the whole of text, not a count of the lines
// left, so that the expectation holds for whatever the installed file holds. It fails
// the test when the excerpt's tokens are not those of [a, b] (as when a or b falls
// inside a comment or a string), which would make the match shorter than the excerpt.
func excerpt(t *testing.T, l fingerprint.Lang, text string, a, b int) (string, int, int) {
	t.Helper()
	comment := cComment
	if l == fingerprint.EmacsLisp {
		comment = lispComment
	}
	lines := strings.SplitAfter(text, "\n")
	if a < 1 || b < a || b > len(lines) {
		t.Fatalf("excerpt of lines %d-%d of a text of %d lines", a, b, len(lines))
	}
	var out strings.Builder
	stripped := comment.ReplaceAllStringFunc(strings.Join(lines[a-1:b], ""), func(c string) string {
		return strings.Repeat("\n", strings.Count(c, "\n"))
	})
	for _, l := range strings.Split(stripped, "\n") {
		if strings.TrimSpace(l) != "" {
			out.WriteString("  " + strings.TrimLeft(l, " \t") + "\n")
		}
	}
	start := len(strings.Join(lines[:a-1], ""))
	end := start + len(strings.Join(lines[a-1:b], ""))
	var want []uint64
	first, last := 0, 0
	for _, tk := range fingerprint.Tokenize(l, []byte(text)) {
		if int(tk.Off) < start || int(tk.End) > end {
			continue
		}
		if first == 0 {
			first = int(tk.Line)
		}
		last = 1 + strings.Count(text[:tk.End-1], "\n") // the line of its last byte, as matches count
		want = append(want, tk.Hash)
	}
	var got []uint64
	for _, tk := range fingerprint.Tokenize(l, []byte(out.String())) {
		got = append(got, tk.Hash)
	}
	if first == 0 || !slices.Equal(got, want) {
		t.Fatalf("lines %d-%d re-indented without comments hold %d tokens, not the %d of the source's lines:\n%s", a, b, len(got), len(want), out.String())
	}
	return out.String(), first, last
}

// definition returns the first and the last line of the definition in text, a file in
// language l, whose first line starts with def: from that line to the line of the
// bracket that closes the first one opened from there ("{" in C, "(" in Lisp), as
// the tokenizer reads text. A rule that finds the same code in every version of a
// corpus, where line numbers hold for one.
func definition(t *testing.T, l fingerprint.Lang, text, def string) (int, int) {
	t.Helper()
	open, close := "{", "}"
	if l == fingerprint.EmacsLisp {
		open, close = "(", ")"
	}
	off := -1
	for o, line := 0, ""; o < len(text); o += len(line) {
		if line, _, _ = strings.Cut(text[o:], "\n"); strings.HasPrefix(line, def) {
			off = o
			break
		}
		line += "\n"
	}
	if off < 0 {
		t.Fatalf("no line starts with %q", def)
	}
	depth := 0
	for _, tk := range fingerprint.Tokenize(l, []byte(text)) {
		if int(tk.Off) < off || tk.Kind != fingerprint.Punct || tk.InLit {
			continue
		}
		switch text[tk.Off:tk.End] {
		case open:
			depth++
		case close:
			if depth--; depth == 0 {
				return 1 + strings.Count(text[:off], "\n"), int(tk.Line)
			}
		}
	}
	t.Fatalf("the definition that starts with %q does not end", def)
	return 0, 0
}

// debianVersion returns the version of the Debian package that owns path, as the
// indexer records it, for the log of a test that reads an installed corpus.
func debianVersion(path string) string {
	src, err := corpus.OpenSource(path)
	if err != nil || src.Version == "" {
		return "unknown"
	}
	return src.Version
}

// emacsLisp returns the Lisp directory of the newest Emacs that emacs-el installed,
// or skips the test.
func emacsLisp(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/share/emacs/*/lisp/simple.el.gz")
	if len(m) == 0 {
		t.Skip("emacs-el is not installed (make deps)")
	}
	slices.Sort(m)
	return filepath.Dir(m[len(m)-1])
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func commonLicense(t *testing.T, name string) string {
	b, err := os.ReadFile("/usr/share/common-licenses/" + name)
	if err != nil {
		t.Skipf("needs Debian's base-files: %v", err)
	}
	return string(b)
}

func TestBuildScanVerify(t *testing.T) {
	root := t.TempDir()
	g := gencode.New(11)
	proj := filepath.Join(root, "proj")
	writeFile(t, filepath.Join(proj, "COPYING"), commonLicense(t, "GPL-2"))
	files := map[string]string{}
	for i := 0; i < 8; i++ {
		files[fmt.Sprintf("src/f%d.c", i)] = g.CFile("/* Part of proj. */\n", 6)
	}
	files["src/dual.c"] = g.CFile("// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause\n", 6)
	files["src/lesser.c"] = g.CFile("// SPDX-License-Identifier: LGPL-2.1-or-later\n", 6)
	files["vendor/v.c"] = g.CFile("", 6)
	files["lib/bsd/b.c"] = g.CFile("", 6)
	for p, c := range files {
		writeFile(t, filepath.Join(proj, p), c)
	}
	writeFile(t, filepath.Join(proj, "lib/bsd/LICENSE"), commonLicense(t, "BSD"))
	writeFile(t, filepath.Join(proj, "src/blob.c"), "int x;\x00\x01\x02binary")

	ix := filepath.Join(root, "ix")
	r := run(t, "", "build", "--out", ix, proj)
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"indexed:     9 documents", "vendored", "binary", "permissive"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("build summary lacks %q:\n%s", want, r.stdout)
		}
	}

	t.Run("excerpt of a file under the repository's GPL", func(t *testing.T) {
		ex, first, last := excerpt(t, fingerprint.C, files["src/f3.c"], 8, 47)
		q := filepath.Join(root, "q.c")
		writeFile(t, q, "#include <stdio.h>\n\n"+ex)
		rep := scan(t, ix, "", q)
		if len(rep.Matches) != 1 {
			t.Fatalf("got %d matches, want 1: %+v", len(rep.Matches), rep)
		}
		m := rep.Matches[0]
		if m.Source.Repo != "proj" || m.Source.Path != "src/f3.c" || !strings.HasPrefix(m.Source.License, "GPL-2.0") || m.Source.LicenseFrom != "repository" {
			t.Errorf("source %+v, want proj src/f3.c GPL-2.0* from repository", m.Source)
		}
		if m.Source.StartLine != first || m.Source.EndLine != last || m.StartLine != 3 {
			t.Errorf("lines: query %d-%d, source %d-%d; want query from 3, source %d-%d", m.StartLine, m.EndLine, m.Source.StartLine, m.Source.EndLine, first, last)
		}
	})
	t.Run("file license line wins", func(t *testing.T) {
		ex, _, _ := excerpt(t, fingerprint.C, files["src/lesser.c"], 5, 40)
		rep := scan(t, ix, "Sure:\n```c\n"+ex+"```\n", "-")
		if len(rep.Matches) != 1 || rep.Matches[0].Source.License != "LGPL-2.1-or-later" || rep.Matches[0].Source.LicenseFrom != "spdx-line" {
			t.Errorf("got %+v, want one LGPL-2.1-or-later match from spdx-line", rep.Matches)
		}
	})
	for _, p := range []string{"src/dual.c", "lib/bsd/b.c", "vendor/v.c"} {
		t.Run("not indexed: "+p, func(t *testing.T) {
			q := filepath.Join(root, "q.c")
			writeFile(t, q, files[p])
			if rep := scan(t, ix, "", q); len(rep.Matches) != 0 {
				t.Errorf("%s matched: %+v", p, rep.Matches)
			}
		})
	}
	t.Run("permissive control: Go's own source", func(t *testing.T) {
		src := filepath.Join(runtime.GOROOT(), "src")
		rep := scan(t, ix, "", filepath.Join(src, "net/http/server.go"), filepath.Join(src, "runtime/proc.go"))
		if len(rep.Matches) != 0 || rep.Files != 2 {
			t.Errorf("got %+v", rep)
		}
	})
	t.Run("stats and verify", func(t *testing.T) {
		r := run(t, "", "stats", "--format", "json", ix)
		var m struct {
			Totals struct{ Docs int }
			Repos  []struct{ Name, License string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.Totals.Docs != 9 || len(m.Repos) != 1 || m.Repos[0].Name != "proj" {
			t.Errorf("stats: %v %+v\n%s", err, m, r.stdout)
		}
		if r := run(t, "", "verify", ix); r.code != 0 || !strings.HasPrefix(r.stdout, "ok:") {
			t.Errorf("verify: exit %d %s %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{"scan", "x.c"}, {"scan", "--index", filepath.Join(root, "nope"), "x.c"}, {"frobnicate"}, {"build", proj}} {
			if r := run(t, "", args...); r.code != 2 || r.stderr == "" {
				t.Errorf("indexer %v: exit %d, stderr %q; want 2 with a message", args, r.code, r.stderr)
			}
		}
		if r := run(t, "", "scan", "--index", ix, filepath.Join(root, "missing.c")); r.code != 2 {
			t.Errorf("scan of a missing file: exit %d", r.code)
		}
	})
	t.Run("corruption", func(t *testing.T) {
		shards, _ := filepath.Glob(filepath.Join(ix, "shard-*.crs"))
		if len(shards) != 1 {
			t.Fatalf("shards: %v", shards)
		}
		orig, _ := os.ReadFile(shards[0])
		defer os.WriteFile(shards[0], orig, 0o644)
		flipped := bytes.Clone(orig)
		flipped[len(flipped)/3] ^= 1
		for name, data := range map[string][]byte{"flipped byte": flipped, "truncated": orig[:len(orig)-100]} {
			os.WriteFile(shards[0], data, 0o644)
			if r := run(t, "", "verify", ix); r.code != 1 || !strings.Contains(r.stderr, "CORRUPT") {
				t.Errorf("%s: verify exit %d, stderr %q; want 1 and CORRUPT", name, r.code, r.stderr)
			}
			if r := run(t, "", "scan", "--index", ix, "-"); r.code != 2 || !strings.Contains(r.stderr, "corrupt") {
				t.Errorf("%s: scan exit %d, stderr %q; want 2 and a message", name, r.code, r.stderr)
			}
		}
	})
}

func gunzip(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("%v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEmacs indexes GNU Emacs' Lisp from Debian's emacs-el and finds a function of
// simple.el, comments stripped, in a markdown answer.
func TestEmacs(t *testing.T) {
	lisp := emacsLisp(t)
	ix := filepath.Join(t.TempDir(), "ix")
	if r := run(t, "", "build", "--out", ix, "emacs="+lisp); r.code != 0 {
		t.Fatalf("build: %d %s %s", r.code, r.stdout, r.stderr)
	}
	simple := gunzip(t, lisp+"/simple.el.gz")
	a, b := definition(t, fingerprint.EmacsLisp, simple, "(defun delete-forward-char ")
	ex, first, last := excerpt(t, fingerprint.EmacsLisp, simple, a, b)
	t.Logf("%s (emacs-el %s): delete-forward-char at lines %d-%d, code at %d-%d", lisp, debianVersion(lisp+"/simple.el.gz"), a, b, first, last)
	rep := scan(t, ix, "Here you go:\n\n```elisp\n"+ex+"```\n", "-")
	if len(rep.Matches) != 1 {
		t.Fatalf("got %+v", rep)
	}
	s := rep.Matches[0].Source
	if s.Path != "simple.el" || s.License != "GPL-3.0-or-later" || s.StartLine != first || s.EndLine != last {
		t.Errorf("source %+v, want simple.el GPL-3.0-or-later lines %d-%d", s, first, last)
	}
}

// TestKernel indexes part of linux-6.1 straight from Debian's .tar.xz and checks the
// scan of a re-indented, comment-stripped excerpt of a GPL-2.0-only file, and that a
// dual-licensed file is not indexed.
func TestKernel(t *testing.T) {
	const archive = "/usr/src/linux-source-6.1.tar.xz"
	if _, err := os.Stat(archive); err != nil {
		t.Skip("linux-source-6.1 is not installed (make deps)")
	}
	if testing.Short() {
		t.Skip("reads the whole kernel archive")
	}
	dir := t.TempDir()
	ix := filepath.Join(dir, "ix")
	r := run(t, "", "build", "--out", ix, "--include", "linux-source-6.1/kernel/sched/**",
		"--include", "linux-source-6.1/lib/zstd/**", "--include", "linux-source-6.1/COPYING", archive)
	if r.code != 0 {
		t.Fatalf("build: %d %s %s", r.code, r.stdout, r.stderr)
	}
	out, err := exec.Command("tar", "-xJOf", archive, "linux-source-6.1/kernel/sched/core.c").Output()
	if err != nil {
		t.Fatal(err)
	}
	core := string(out)
	if !strings.HasPrefix(core, "// SPDX-License-Identifier: GPL-2.0-only\n") {
		t.Fatalf("core.c starts %q", core[:60])
	}
	// A function found by its name, not lines found by number: those move between the
	// package's versions, and a range cut at a number may end in a comment.
	a, b := definition(t, fingerprint.C, core, "void migrate_enable(void)")
	ex, first, last := excerpt(t, fingerprint.C, core, a, b)
	t.Logf("linux-source-6.1 %s: migrate_enable() at lines %d-%d of kernel/sched/core.c, code at %d-%d", debianVersion(archive), a, b, first, last)
	q := filepath.Join(dir, "q.c")
	writeFile(t, q, ex)
	rep := scan(t, ix, "", q)
	if len(rep.Matches) != 1 {
		t.Fatalf("got %+v", rep)
	}
	s := rep.Matches[0].Source
	if s.Repo != "linux-source-6.1" || s.Path != "kernel/sched/core.c" || s.License != "GPL-2.0-only" || s.StartLine != first || s.EndLine != last {
		t.Errorf("source %+v, want linux-source-6.1 kernel/sched/core.c GPL-2.0-only lines %d-%d", s, first, last)
	}
	zstd, err := exec.Command("tar", "-xJOf", archive, "linux-source-6.1/lib/zstd/zstd_compress_module.c").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(zstd), "// SPDX-License-Identifier: GPL-2.0+ OR BSD-3-Clause\n") {
		t.Fatalf("zstd_compress_module.c is not dual-licensed: %q", zstd[:100])
	}
	writeFile(t, q, string(zstd))
	if rep := scan(t, ix, "", q); len(rep.Matches) != 0 {
		t.Errorf("a BSD-3-Clause OR GPL-2.0-only file was indexed: %+v", rep.Matches)
	}
}
