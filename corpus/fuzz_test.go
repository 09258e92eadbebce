package corpus

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"cleanroom/corpus/license"
)

// fuzzWalk walks data stored as an archive of the given kind; it must not panic,
// whatever data holds.
func fuzzWalk(t *testing.T, kind string, data []byte) {
	p := filepath.Join(t.TempDir(), "fuzz."+kind)
	must(t, os.WriteFile(p, data, 0o644))
	src, err := OpenSource(p)
	must(t, err)
	repos := NewRepos(src)
	_ = Walk(t.Context(), src, Options{MaxFileSize: 1 << 16}, repos, &Stats{}, func(f *File) error {
		FileLicense(f.Data)
		return nil
	})
	repos.For("a/b/c.c")
}

// fuzzSeed is a small archive's entries: the fuzzer minimizes every input it finds
// interesting, which takes long on big ones.
var fuzzSeed = []tfile{
	{name: "p/", typ: '5'},
	{name: "p/LICENSE", data: "Permission is hereby granted, free of charge, to any person obtaining a copy\n"},
	{name: "p/a.c", data: "// SPDX-License-Identifier: GPL-2.0\nint a;\n"},
	{name: "p/b.el.gz", data: "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x01\x00\x00\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"},
	{name: "p/l.c", typ: '2', link: "/etc/passwd"},
	{name: "../e.c", data: "int e;\n"},
}

func FuzzWalkTar(f *testing.F) {
	var b bytes.Buffer
	writeTar(f, &b, fuzzSeed)
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:700])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, KindTar, data) })
}

func FuzzWalkTarGz(f *testing.F) {
	data, err := os.ReadFile(writeArchive(f, f.TempDir(), "seed", KindTarGz, fuzzSeed))
	must(f, err)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, KindTarGz, data) })
}

func FuzzWalkZip(f *testing.F) {
	var b bytes.Buffer
	writeZip(f, &b, fuzzSeed)
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:len(b.Bytes())-10])
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, KindZip, data) })
}

func FuzzFileLicense(f *testing.F) {
	f.Add([]byte("// SPDX-License-Identifier: GPL-2.0-only\n"))
	f.Add([]byte(comment("c", noticeFrom(f, "GPL-2", "This program is free software"))))
	f.Add([]byte("GNU General Public License version"))
	f.Add([]byte("gplv"))
	f.Fuzz(func(t *testing.T, data []byte) {
		expr, from := FileLicense(data)
		if (expr == "") != (from == "") {
			t.Errorf("FileLicense = %q, %q", expr, from)
		}
		if from == FromNotice {
			if _, err := license.Classify(expr); err != nil {
				t.Errorf("notice license %q does not parse: %v", expr, err)
			}
		}
	})
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"GPL-2.0 WITH Linux-syscall-note", "(GPL-2.0 OR MIT) AND LGPL-2.1", "LicenseRef-x", "((", "MIT AND", "a WITH b WITH c"} {
		f.Add(s)
	}
	p := license.DefaultPolicy()
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := license.Classify(expr)
		_, pc, perr := p.Keep(expr)
		if (err == nil) != (perr == nil) || (err == nil && c != pc) {
			t.Errorf("license.Classify(%q) = %v, %v but Keep gives %v, %v", expr, c, err, pc, perr)
		}
	})
}
