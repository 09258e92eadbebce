package corpus

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// commonLicenses holds the license texts that Debian ships; tests read them at run time.
const commonLicenses = "/usr/share/common-licenses"

// licenseText returns a license text from /usr/share/common-licenses, skipping the
// test when it is absent.
func licenseText(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(commonLicenses, name))
	if err != nil {
		t.Skipf("license text %s not available: %v", name, err)
	}
	return data
}

// noticeFrom returns the indented notice block of a license text that starts at the
// line holding start: lines are taken while they are blank or indented.
func noticeFrom(t testing.TB, license, start string) string {
	t.Helper()
	text := string(licenseText(t, license))
	i := strings.Index(text, start)
	if i < 0 {
		t.Fatalf("%s: no %q", license, start)
	}
	i = strings.LastIndexByte(text[:i], '\n') + 1
	var lines []string
	for _, line := range strings.SplitAfter(text[i:], "\n") {
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "  ") {
			break
		}
		lines = append(lines, line)
	}
	return strings.TrimSpace(strings.Join(lines, ""))
}

// comment turns text into a comment in the style of a language: "c" (/* * */),
// "go" (//), "lisp" (;;), "sh" (#).
func comment(style, text string) string {
	var b strings.Builder
	lines := strings.Split(text, "\n")
	switch style {
	case "c":
		b.WriteString("/*\n")
		for _, l := range lines {
			b.WriteString(strings.TrimRight(" * "+strings.TrimSpace(l), " ") + "\n")
		}
		b.WriteString(" */\n")
	default:
		prefix := map[string]string{"go": "// ", "lisp": ";; ", "sh": "# "}[style]
		for _, l := range lines {
			b.WriteString(strings.TrimRight(prefix+strings.TrimSpace(l), " ") + "\n")
		}
	}
	return b.String()
}

// cCode generates n plausible C functions, hand-written looking.
func cCode(seed string, n int) string {
	var b strings.Builder
	b.WriteString("#include <stdio.h>\n#include <stdlib.h>\n\n")
	for i := range n {
		fmt.Fprintf(&b, "/* %s_step%d advances the state by one step. */\n", seed, i)
		fmt.Fprintf(&b, "static int %s_step%d(int *state, size_t len)\n{\n", seed, i)
		fmt.Fprintf(&b, "\tint sum = %d;\n\n\tfor (size_t j = 0; j < len; j++) {\n", i)
		fmt.Fprintf(&b, "\t\tif (state[j] %% %d == 0)\n\t\t\tcontinue;\n", i+2)
		fmt.Fprintf(&b, "\t\tsum += state[j] * %d;\n\t}\n\treturn sum;\n}\n\n", i+1)
	}
	return b.String()
}

// goCode generates a small Go file.
func goCode(pkg string) string {
	return fmt.Sprintf("package %s\n\n// Sum adds up xs.\nfunc Sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\treturn total\n}\n", pkg)
}

// elispCode generates a small Emacs Lisp file.
func elispCode(name string) string {
	return fmt.Sprintf(";;; %s.el --- a test mode  -*- lexical-binding: t -*-\n\n(defun %s-hello (name)\n  \"Greet NAME.\"\n  (message \"Hello, %%s\" name))\n\n(provide '%s)\n", name, name, name)
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	if _, err := z.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tfile is an archive entry to write.
type tfile struct {
	name string
	data string
	typ  byte   // tar type flag; 0 is a regular file
	link string // link target for symbolic and hard links
}

// archiveFixture is a source tree with one file for each rule of Walk.
type archiveFixture struct {
	files       []tfile
	visited     map[string]string // path -> content of the files Walk hands over
	skipped     map[string]int64  // reason -> count, for tar
	zipSkipped  map[string]int64  // reason -> count, for zip (no hard links nor FIFOs)
	licenses    int64
	generated   int64 // of visited, generated files kept for their copyleft notice
	maxFileSize int64
}

func newArchiveFixture(t testing.TB) *archiveFixture {
	main := "// SPDX-License-Identifier: GPL-2.0-only\n" + cCode("main", 4)
	util := comment("c", noticeFrom(t, "LGPL-2.1", "This library is free software")) + cCode("util", 3)
	list := cCode("list", 5)
	tool := "#!/usr/bin/env python3\n\ndef main():\n    print('hello')\n\nif __name__ == '__main__':\n    main()\n"
	mode := elispCode("test-mode")
	huge := cCode("huge", 400) // some 100 KiB of ordinary lines
	minified := "var a=" + strings.Repeat("function(b){return b+1},", 250) + "0;\n"
	// Generated code under the GPL is GPL code: a CGEN-style table with its
	// project's notice, and protobuf output with an SPDX line.
	opc := "/* Opcode table for proj.  -*- C -*-\n   THIS FILE IS MACHINE GENERATED WITH CGEN.  DO NOT EDIT!\n */\n" +
		comment("c", noticeFrom(t, "GPL-2", "This program is free software")) + cCode("opc", 2)
	gplpb := "// SPDX-License-Identifier: GPL-2.0-or-later\n// Code generated by protoc-gen-go. DO NOT EDIT.\n\n" + goCode("api")
	f := &archiveFixture{
		maxFileSize: 64 << 10,
		files: []tfile{
			{name: "proj/", typ: tar.TypeDir},
			{name: "proj/LICENSE", data: string(licenseText(t, "GPL-2"))},
			{name: "proj/src/", typ: tar.TypeDir},
			{name: "proj/src/main.c", data: main},
			{name: "proj/src/util.h", data: util},
			{name: "proj/src/tool.py", data: tool},
			{name: "proj/lib/COPYING", data: string(licenseText(t, "GPL-2"))},
			{name: "proj/lib/COPYING.LIB", data: string(licenseText(t, "LGPL-2.1"))},
			{name: "proj/lib/list.c", data: list},
			{name: "proj/lisp/test-mode.el.gz", data: string(gzipBytes(t, []byte(mode)))},
			{name: "proj/README.md", data: "# proj\n\nA test project.\n"},
			{name: "proj/data/table.bin", data: "\x00\x01\x02"},
			{name: "proj/bin.c", data: "\x7fELF\x00\x00\x00" + strings.Repeat("\x00\xff", 100)},
			{name: "proj/huge.c", data: huge},
			{name: "proj/vendor/dep/dep.go", data: goCode("dep")},
			{name: "proj/third_party/x/x.c", data: cCode("x", 1)},
			{name: "proj/api/api.pb.go", data: goCode("api")},
			{name: "proj/api/gpl.pb.go", data: gplpb},
			{name: "proj/src/opc.c", data: opc},
			{name: "proj/api/kind_string.go", data: "// Code generated by \"stringer -type=Kind\"; DO NOT EDIT.\n\n" + goCode("api")},
			{name: "proj/web/app.js", data: minified},
			{name: "proj/nested.tar.gz", data: string(gzipBytes(t, []byte("not really a tar")))},
			{name: "proj/.git/config", data: "[core]\n"},
			{name: "proj/.git/objects/ab/cdef", data: "x"},
			{name: "proj/link.c", typ: tar.TypeSymlink, link: "/etc/passwd"},
			{name: "proj/hard.c", typ: tar.TypeLink, link: "proj/src/main.c"},
			{name: "proj/fifo.c", typ: tar.TypeFifo},
			{name: "../evil.c", data: cCode("evil", 1)},
			{name: "/abs/evil.c", data: cCode("evil", 1)},
			{name: "proj/../../evil2.c", data: cCode("evil", 1)},
		},
		visited: map[string]string{
			"proj/src/main.c":        main,
			"proj/src/util.h":        util,
			"proj/src/tool.py":       tool,
			"proj/lib/list.c":        list,
			"proj/lisp/test-mode.el": mode,
			"proj/src/opc.c":         opc,
			"proj/api/gpl.pb.go":     gplpb,
		},
		generated: 2,
		skipped: map[string]int64{
			SkipLanguage: 2, SkipBinary: 1, SkipHuge: 1, SkipVendored: 2, SkipGenerated: 2,
			SkipMinified: 1, SkipArchive: 1, SkipSymlink: 2, SkipUnsafePath: 3, SkipUnreadable: 1,
		},
		licenses: 3,
	}
	f.zipSkipped = make(map[string]int64)
	for k, v := range f.skipped {
		f.zipSkipped[k] = v
	}
	f.zipSkipped[SkipSymlink] = 1 // no hard links in zip
	delete(f.zipSkipped, SkipUnreadable)
	return f
}

// writeTar writes files as a tar stream.
func writeTar(t testing.TB, w io.Writer, files []tfile) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Typeflag: f.typ, Linkname: f.link, Format: tar.FormatPAX}
		switch f.typ {
		case 0:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		case tar.TypeDir:
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", f.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, f.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeZip writes files as a zip archive; hard links and FIFOs are left out.
func writeZip(t testing.TB, w io.Writer, files []tfile) {
	t.Helper()
	zw := zip.NewWriter(w)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Deflate}
		data := f.data
		switch f.typ {
		case 0:
			h.SetMode(0o644)
		case tar.TypeDir:
			h.SetMode(fs.ModeDir | 0o755)
		case tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			data = f.link
		default:
			continue
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatalf("zip entry %s: %v", f.name, err)
		}
		if _, err := io.WriteString(fw, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeArchive writes files as an archive of the given kind in dir, named name plus the
// kind's ending, and returns its path. It skips the test for tar.bz2 when the bzip2
// program, the only way to write one, is absent.
func writeArchive(t testing.TB, dir, name, kind string, files []tfile) string {
	t.Helper()
	p := filepath.Join(dir, name+"."+kind)
	var b bytes.Buffer
	switch kind {
	case KindZip:
		writeZip(t, &b, files)
	case KindTar:
		writeTar(t, &b, files)
	case KindTarGz:
		z := gzip.NewWriter(&b)
		writeTar(t, z, files)
		must(t, z.Close())
	case KindTarXz:
		x, err := xz.NewWriter(&b)
		must(t, err)
		writeTar(t, x, files)
		must(t, x.Close())
	case KindTarZst:
		z, err := zstd.NewWriter(&b)
		must(t, err)
		writeTar(t, z, files)
		must(t, z.Close())
	case KindTarBz2:
		bz, err := exec.LookPath("bzip2")
		if err != nil {
			t.Skip("no bzip2 program to write a tar.bz2")
		}
		var raw bytes.Buffer
		writeTar(t, &raw, files)
		cmd := exec.Command(bz, "-c")
		cmd.Stdin, cmd.Stdout = &raw, &b
		must(t, cmd.Run())
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	must(t, os.WriteFile(p, b.Bytes(), 0o644))
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeTree writes files (path -> content) under dir.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(data), 0o644))
	}
}

// walkResult is what a Walk handed over.
type walkResult struct {
	files map[string]*File
	stats *Stats
	repos *Repos
	err   error
	reads []int64 // src.BytesRead() at each visit
}

// walkAll walks a source and collects the files.
func walkAll(t testing.TB, src *Source, opts Options) walkResult {
	t.Helper()
	r := walkResult{files: make(map[string]*File), stats: &Stats{}, repos: NewRepos(src)}
	r.err = Walk(t.Context(), src, opts, r.repos, r.stats, func(f *File) error {
		if _, dup := r.files[f.Path]; dup {
			t.Errorf("%s visited twice", f.Path)
		}
		r.files[f.Path] = f
		r.reads = append(r.reads, src.BytesRead())
		return nil
	})
	return r
}

func sortedPaths[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
