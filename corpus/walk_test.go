package corpus

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"cleanroom/fingerprint"
)

func TestWalkArchives(t *testing.T) {
	fx := newArchiveFixture(t)
	dir := t.TempDir()
	for _, kind := range []string{KindTar, KindTarGz, KindTarXz, KindTarZst, KindTarBz2, KindZip} {
		t.Run(kind, func(t *testing.T) {
			p := writeArchive(t, dir, "proj-1.0", kind, fx.files)
			src, err := OpenSource(p)
			must(t, err)
			if src.Kind != kind || src.Name != "proj-1.0" {
				t.Errorf("OpenSource(%s): kind %q name %q, want %q %q", p, src.Kind, src.Name, kind, "proj-1.0")
			}
			r := walkAll(t, src, Options{MaxFileSize: fx.maxFileSize})
			if r.err != nil {
				t.Fatalf("Walk: %v", r.err)
			}
			if got, want := sortedPaths(r.files), sortedPaths(fx.visited); !reflect.DeepEqual(got, want) {
				t.Errorf("visited\n got %q\nwant %q", got, want)
			}
			var bytes int64
			for p, want := range fx.visited {
				if f := r.files[p]; f != nil && string(f.Data) != want {
					t.Errorf("%s: content differs (%d bytes, want %d)", p, len(f.Data), len(want))
				}
				bytes += int64(len(want))
			}
			wantSkipped := fx.skipped
			if kind == KindZip {
				wantSkipped = fx.zipSkipped
			}
			if !maps.Equal(r.stats.Skipped, wantSkipped) {
				t.Errorf("skipped\n got %v\nwant %v", r.stats.Skipped, wantSkipped)
			}
			if r.stats.Files != int64(len(fx.visited)) || r.stats.Bytes != bytes || r.stats.LicenseFiles != fx.licenses {
				t.Errorf("stats files=%d bytes=%d licenses=%d, want %d %d %d",
					r.stats.Files, r.stats.Bytes, r.stats.LicenseFiles, len(fx.visited), bytes, fx.licenses)
			}
			generated := int64(0)
			for _, f := range r.files {
				if f.Generated {
					generated++
				}
			}
			if r.stats.Generated != fx.generated || generated != fx.generated {
				t.Errorf("generated files kept for their notice: %d counted, %d flagged, want %d", r.stats.Generated, generated, fx.generated)
			}
			if got, want := src.BytesRead(), src.Size(); got != want {
				t.Errorf("BytesRead() = %d after the walk, want Size() = %d", got, want)
			}
			for i, n := range r.reads {
				if n <= 0 || n > src.Size() || (i > 0 && n < r.reads[i-1]) {
					t.Errorf("BytesRead() during the walk: %v, want growing values in (0, %d]", r.reads, src.Size())
					break
				}
			}
			langs := map[string]fingerprint.Lang{"proj/src/main.c": fingerprint.C, "proj/src/tool.py": fingerprint.Python, "proj/lisp/test-mode.el": fingerprint.EmacsLisp}
			for p, want := range langs {
				if f := r.files[p]; f != nil && f.Lang != want {
					t.Errorf("%s: lang %v, want %v", p, f.Lang, want)
				}
			}
			checkFixtureRepos(t, src, r.repos)
		})
	}
}

// checkFixtureRepos checks the repositories of the archive fixture: proj (GPL-2 text)
// and proj/lib (GPL-2 and LGPL-2.1 texts).
func checkFixtureRepos(t *testing.T, src *Source, repos *Repos) {
	t.Helper()
	must(t, repos.Detect())
	type repoWant struct{ root, name, license string }
	var got []repoWant
	for _, r := range repos.All() {
		got = append(got, repoWant{r.Root, r.Name, r.License})
	}
	want := []repoWant{{"proj", src.Name, "GPL-2.0-only"}, {"proj/lib", "proj/lib", "LGPL-2.1-only"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("repos\n got %+v\nwant %+v", got, want)
	}
	for p, root := range map[string]string{"proj/lib/list.c": "proj/lib", "proj/src/main.c": "proj", "proj/x.c": "proj"} {
		if r := repos.For(p); r.Root != root {
			t.Errorf("For(%q) = %q, want %q", p, r.Root, root)
		}
	}
}

func TestWalkDir(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.c": cCode("secret", 1), "GPL-3": "not here"})
	root := filepath.Join(t.TempDir(), "tree")
	mode := elispCode("simple")
	files := map[string]string{
		"LICENSE":                  string(licenseText(t, "BSD")),
		"a.c":                      cCode("a", 2),
		"sub/b.go":                 goCode("sub"),
		"lisp/simple.el.gz":        string(gzipBytes(t, []byte(mode))),
		"lisp/old.elc":             "compiled",
		"pkg.tar.gz":               string(gzipBytes(t, []byte("x"))),
		".git/HEAD":                "ref: refs/heads/main\n",
		".git/refs/heads/main.c":   "not code",
		"node_modules/left/pad.js": "module.exports = 1;\n",
	}
	writeTree(t, root, files)
	links := map[string]string{
		"out":          outside,                            // a directory outside
		"outfile.c":    filepath.Join(outside, "secret.c"), // a file outside
		"loop1":        "loop2",                            // a loop
		"loop2":        "loop1",
		"sub/self":     "..",                            // a directory loop
		"lisp/COPYING": filepath.Join(outside, "GPL-3"), // as Emacs' lisp/COPYING
	}
	for name, target := range links {
		must(t, os.Symlink(target, filepath.Join(root, name)))
	}
	wantVisited := map[string]string{"a.c": files["a.c"], "sub/b.go": files["sub/b.go"], "lisp/simple.el": mode}
	wantSkipped := map[string]int64{SkipSymlink: 6, SkipArchive: 1, SkipLanguage: 1, SkipVendored: 1}

	rootLink := filepath.Join(t.TempDir(), "link-to-tree")
	must(t, os.Symlink(root, rootLink))
	for _, spec := range []string{root, "mytree=" + root, rootLink} {
		t.Run(filepath.Base(spec), func(t *testing.T) {
			src, err := OpenSource(spec)
			must(t, err)
			wantName := filepath.Base(spec)
			if strings.HasPrefix(spec, "mytree=") {
				wantName = "mytree"
			}
			if src.Kind != KindDir || src.Name != wantName {
				t.Errorf("OpenSource(%s): kind %q name %q, want dir %q", spec, src.Kind, src.Name, wantName)
			}
			r := walkAll(t, src, Options{})
			if r.err != nil {
				t.Fatalf("Walk: %v", r.err)
			}
			if got, want := sortedPaths(r.files), sortedPaths(wantVisited); !reflect.DeepEqual(got, want) {
				t.Errorf("visited\n got %q\nwant %q", got, want)
			}
			for p, want := range wantVisited {
				if f := r.files[p]; f != nil && string(f.Data) != want {
					t.Errorf("%s: content %q, want %q", p, f.Data, want)
				}
			}
			if !maps.Equal(r.stats.Skipped, wantSkipped) {
				t.Errorf("skipped\n got %v\nwant %v", r.stats.Skipped, wantSkipped)
			}
			if r.stats.LicenseFiles != 1 {
				t.Errorf("license files: %d, want 1 (LICENSE; lisp/COPYING is a link)", r.stats.LicenseFiles)
			}
			if got, want := src.BytesRead(), src.Size(); got != want || want == 0 {
				t.Errorf("BytesRead() = %d after the walk, want Size() = %d", got, want)
			}
			must(t, r.repos.Detect())
			all := r.repos.All()
			if len(all) != 1 || all[0].Root != "" || all[0].Name != wantName || all[0].License != "BSD-3-Clause" {
				t.Errorf("repos: %+v, want one at the root named %q with BSD-3-Clause", all[0], wantName)
			}
		})
	}
}

func TestWalkSingleFile(t *testing.T) {
	dir := t.TempDir()
	mode := elispCode("files")
	tests := []struct {
		name, data string
		wantPath   string
		wantName   string
		wantSkip   string
	}{
		{"files.el.gz", string(gzipBytes(t, []byte(mode))), "files.el", "files.el", ""},
		{"plain.c", cCode("plain", 1), "plain.c", "plain.c", ""},
		{"notes.txt", "text", "", "notes.txt", SkipLanguage},
		{"bomb.c.gz", string(gzipBytes(t, make([]byte, 2<<20))), "", "bomb.c", SkipHuge},
		{"broken.c.gz", "\x1f\x8b not gzip", "", "broken.c", SkipUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			must(t, os.WriteFile(p, []byte(tt.data), 0o644))
			src, err := OpenSource(p)
			must(t, err)
			if src.Kind != KindFile || src.Name != tt.wantName {
				t.Errorf("kind %q name %q, want file %q", src.Kind, src.Name, tt.wantName)
			}
			r := walkAll(t, src, Options{})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if tt.wantPath != "" {
				if f := r.files[tt.wantPath]; f == nil || len(r.files) != 1 {
					t.Errorf("visited %q, want only %q", sortedPaths(r.files), tt.wantPath)
				}
			}
			if tt.wantSkip != "" && (len(r.files) != 0 || r.stats.Skipped[tt.wantSkip] != 1) {
				t.Errorf("visited %q skipped %v, want one %s", sortedPaths(r.files), r.stats.Skipped, tt.wantSkip)
			}
		})
	}
}

func TestWalkIncludeExclude(t *testing.T) {
	fx := newArchiveFixture(t)
	p := writeArchive(t, t.TempDir(), "proj", KindTar, fx.files)
	src, err := OpenSource(p)
	must(t, err)
	tests := []struct {
		name             string
		include, exclude []string
		want             []string
		licenses         int64
	}{
		{"include dir", []string{"proj/src"}, nil, []string{"proj/src/main.c", "proj/src/opc.c", "proj/src/tool.py", "proj/src/util.h"}, 3},
		{"include glob", []string{"**/*.c"}, nil, []string{"proj/lib/list.c", "proj/src/main.c", "proj/src/opc.c"}, 3},
		{"exclude", nil, []string{"proj/lib", "**/*.py"}, []string{"proj/api/gpl.pb.go", "proj/lisp/test-mode.el", "proj/src/main.c", "proj/src/opc.c", "proj/src/util.h"}, 1},
		{"both", []string{"proj/src/*"}, []string{"proj/src/u*"}, []string{"proj/src/main.c", "proj/src/opc.c", "proj/src/tool.py"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := walkAll(t, src, Options{MaxFileSize: fx.maxFileSize, Include: tt.include, Exclude: tt.exclude})
			must(t, r.err)
			if got := sortedPaths(r.files); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("visited\n got %q\nwant %q", got, tt.want)
			}
			if r.stats.LicenseFiles != tt.licenses {
				t.Errorf("license files %d, want %d", r.stats.LicenseFiles, tt.licenses)
			}
			if r.stats.Skipped[SkipExcluded] == 0 {
				t.Errorf("no file counted as excluded: %v", r.stats.Skipped)
			}
		})
	}
	if err := Walk(t.Context(), src, Options{Include: []string{"[a-"}}, nil, nil, func(*File) error { return nil }); err == nil {
		t.Errorf("Walk with a malformed pattern: no error")
	}
}

func TestWalkStops(t *testing.T) {
	fx := newArchiveFixture(t)
	p := writeArchive(t, t.TempDir(), "proj", KindTarGz, fx.files)
	src, err := OpenSource(p)
	must(t, err)
	errStop := errors.New("stop")
	n := 0
	err = Walk(t.Context(), src, Options{}, nil, nil, func(*File) error { n++; return errStop })
	if !errors.Is(err, errStop) || n != 1 {
		t.Errorf("visit error: Walk returned %v after %d visits, want %v after 1", err, n, errStop)
	}
	ctx, cancel := context.WithCancel(t.Context())
	n = 0
	err = Walk(ctx, src, Options{}, nil, nil, func(*File) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("cancelled: Walk returned %v after %d visits, want %v after 1", err, n, context.Canceled)
	}
}

func TestWalkCorrupt(t *testing.T) {
	fx := newArchiveFixture(t)
	dir := t.TempDir()
	for _, kind := range []string{KindTarGz, KindTarXz, KindTarZst, KindTar} {
		t.Run("truncated "+kind, func(t *testing.T) {
			p := writeArchive(t, dir, "trunc", kind, fx.files)
			data, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(p, data[:len(data)*2/3/512*512+100], 0o644))
			src, err := OpenSource(p)
			must(t, err)
			r := walkAll(t, src, Options{MaxFileSize: fx.maxFileSize})
			if r.err == nil || !strings.Contains(r.err.Error(), p) {
				t.Errorf("Walk of a truncated %s: error %v, want one naming %s", kind, r.err, p)
			}
		})
	}
	t.Run("zip entry", func(t *testing.T) {
		p := writeArchive(t, dir, "bad", KindZip, fx.files)
		data, err := os.ReadFile(p)
		must(t, err)
		// Flip a byte in the compressed data of proj/lib/list.c: its checksum fails.
		i := strings.Index(string(data), "proj/lib/list.c")
		data[i+len("proj/lib/list.c")+20] ^= 0xff
		must(t, os.WriteFile(p, data, 0o644))
		src, err := OpenSource(p)
		must(t, err)
		r := walkAll(t, src, Options{MaxFileSize: fx.maxFileSize})
		if r.err != nil {
			t.Fatalf("Walk: %v, want the walk to go on", r.err)
		}
		if r.files["proj/lib/list.c"] != nil || r.stats.Skipped[SkipUnreadable] != 1 || len(r.files) != len(fx.visited)-1 {
			t.Errorf("visited %q, skipped %v; want all but proj/lib/list.c, which is unreadable", sortedPaths(r.files), r.stats.Skipped)
		}
	})
	t.Run("not an archive", func(t *testing.T) {
		p := filepath.Join(dir, "junk.tar.xz")
		must(t, os.WriteFile(p, []byte("this is no xz stream"), 0o644))
		src, err := OpenSource(p)
		must(t, err)
		if r := walkAll(t, src, Options{}); r.err == nil {
			t.Errorf("Walk of junk: no error")
		}
	})
}

func TestOpenSource(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"glibc-2.36.tar.xz": "", "a=b/x.c": "", "go1.22.src.tgz": ""})
	tests := []struct {
		spec, kind, name string
		wantErr          bool
	}{
		{filepath.Join(dir, "glibc-2.36.tar.xz"), KindTarXz, "glibc-2.36", false},
		{"libc=" + filepath.Join(dir, "glibc-2.36.tar.xz"), KindTarXz, "libc", false},
		{filepath.Join(dir, "go1.22.src.tgz"), KindTarGz, "go1.22.src", false},
		{filepath.Join(dir, "a=b"), KindDir, "a=b", false},
		{filepath.Join(dir, "missing.tar"), "", "", true},
		{"name=", "", "", true},
		{"", "", "", true},
		{"/dev/null", "", "", true},
	}
	for _, tt := range tests {
		src, err := OpenSource(tt.spec)
		if tt.wantErr {
			if err == nil {
				t.Errorf("OpenSource(%q): no error", tt.spec)
			}
			continue
		}
		if err != nil {
			t.Errorf("OpenSource(%q): %v", tt.spec, err)
			continue
		}
		if src.Kind != tt.kind || src.Name != tt.name {
			t.Errorf("OpenSource(%q) = kind %q name %q, want %q %q", tt.spec, src.Kind, src.Name, tt.kind, tt.name)
		}
	}
}

func TestStatsConcurrent(t *testing.T) {
	fx := newArchiveFixture(t)
	p := writeArchive(t, t.TempDir(), "proj", KindTarGz, fx.files)
	src, err := OpenSource(p)
	must(t, err)
	var stats Stats
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = stats.Snapshot()
			_ = src.BytesRead()
		}
	}()
	must(t, Walk(t.Context(), src, Options{MaxFileSize: fx.maxFileSize}, nil, &stats, func(*File) error { return nil }))
	<-done
	var total Stats
	total.Add(&stats)
	total.Add(&stats)
	if total.Files != 2*stats.Files || total.SkippedTotal() != 2*stats.SkippedTotal() {
		t.Errorf("Add twice: %d files %d skipped, want %d %d", total.Files, total.SkippedTotal(), 2*stats.Files, 2*stats.SkippedTotal())
	}
}

func TestSkipRules(t *testing.T) {
	long := strings.Repeat("x = 1; ", 1000) // one 7000-byte line
	gpl := comment("c", noticeFrom(t, "GPL-3", "This program is free software"))
	lgpl := comment("c", noticeFrom(t, "LGPL-2.1", "This library is free software"))
	mit := comment("c", "Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal")
	tests := []struct {
		name, data, want string
		byName           bool // generated by its name
		generated        bool // kept for its copyleft notice
	}{
		{name: "plain C", data: cCode("p", 3)},
		{name: "plain C with a GPL notice", data: gpl + cCode("p", 3)},
		// Generated code is kept when it states a copyleft license of its own.
		{name: "generated, GPL notice", data: "/* Generated by cgen. DO NOT EDIT. */\n" + gpl + cCode("g", 2), generated: true},
		{name: "generated, LGPL notice", data: "/* This file is automatically generated by gen-tables.awk */\n" + lgpl + cCode("g", 2), generated: true},
		{name: "generated, GPL SPDX line", data: "/* SPDX-License-Identifier: GPL-2.0 */\n/* Code generated by gen_x.sh. DO NOT EDIT. */\n" + cCode("g", 2), generated: true},
		{name: "generated by name, GPL SPDX line", data: "// SPDX-License-Identifier: LGPL-2.1+\n" + goCode("p"), byName: true, generated: true},
		{name: "generated, GPL OR MIT", data: "/* SPDX-License-Identifier: GPL-2.0 OR MIT */\n/* DO NOT EDIT */\n" + cCode("g", 2), want: SkipGenerated},
		{name: "generated, MIT notice", data: "/* Code generated by gen. DO NOT EDIT. */\n" + mit + cCode("g", 2), want: SkipGenerated},
		{name: "generated, LicenseRef", data: "// SPDX-License-Identifier: LicenseRef-Acme\n// Code generated by gen. DO NOT EDIT.\n" + goCode("p"), want: SkipGenerated},
		{name: "generated by name", data: goCode("p"), byName: true, want: SkipGenerated},
		{name: "generated, GPL notice, minified", data: "/* DO NOT EDIT */\n" + gpl + "var a;\n" + long + "\n", want: SkipMinified},
		{name: "generated, GPL notice, binary", data: "/* DO NOT EDIT */\n" + gpl + "\x00", want: SkipBinary},
		{name: "latin-1 comment", data: "/* Copyright J\xfcrgen M\xfcller */\n" + cCode("l", 1)},
		{name: "NUL", data: "int x;\x00", want: SkipBinary},
		{name: "random bytes", data: strings.Repeat("\xff\xfe\x80", 100), want: SkipBinary},
		{name: "go generated", data: "// Code generated by protoc-gen-go. DO NOT EDIT.\n" + goCode("p"), want: SkipGenerated},
		{name: "@generated", data: "/* @generated by relay */\n" + cCode("g", 1), want: SkipGenerated},
		{name: "generated by, header", data: "/* Generated by gperf 3.1 */\n" + cCode("g", 1), want: SkipGenerated},
		{name: "autogenerated, header", data: "# This file is autogenerated by tools/gen.py\nx = 1\n", want: SkipGenerated},
		{name: "generated by, prose", data: "/*\n * Handle interrupts generated by the controller.\n */\n" + cCode("g", 1)},
		{name: "code generated for, prose", data: "/* The code generated for this function is slow. */\n" + cCode("g", 1)},
		{name: "generated by, late", data: cCode("g", 2) + "/* Generated by hand */\n"},
		{name: "minified long line", data: "var a;\n" + long + "\n", want: SkipMinified},
		{name: "small long line", data: long[:3000]},
		{name: "long average", data: strings.Repeat(strings.Repeat("y", 400)+"\n", 20), want: SkipMinified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, generated := contentSkip([]byte(tt.data), tt.byName)
			if got != tt.want || generated != tt.generated {
				t.Errorf("contentSkip = %q, %v; want %q, %v", got, generated, tt.want, tt.generated)
			}
		})
	}
	names := map[string]bool{"api.pb.go": true, "a_pb2.py": true, "x_generated.go": true, "jquery.min.js": false,
		"clk-generated.c": false, "main.go": false, "generated.c": false}
	for name, want := range names {
		if got := generatedName(name); got != want {
			t.Errorf("generatedName(%q) = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]bool{"jquery.min.js": true, "app-bundle.min.js": true, "site.min.css": true, "min.js": false} {
		if got := minifiedName(name); got != want {
			t.Errorf("minifiedName(%q) = %v, want %v", name, got, want)
		}
	}
	licenses := map[string]bool{"LICENSE": true, "license.md": true, "LICENSE-MIT": true, "COPYING.LIB": true,
		"Copyright": true, "UNLICENSE": true, "LICENCE": true, "copyright.elc": false, "licensed.txt": false,
		"COPYINGX": false, "README": false}
	for name, want := range licenses {
		if got := isLicenseName(name); got != want {
			t.Errorf("isLicenseName(%q) = %v, want %v", name, got, want)
		}
	}
}
