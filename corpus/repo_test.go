package corpus

import (
	"reflect"
	"testing"

	"cleanroom/corpus/license"
)

func TestReposNested(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"COPYING":             string(licenseText(t, "GPL-2")),
		"main.c":              cCode("main", 1),
		"a/LICENSE":           string(licenseText(t, "BSD")),
		"a/x.c":               cCode("x", 1),
		"a/b/LICENSE-2.0":     string(licenseText(t, "Apache-2.0")),
		"a/b/c/y.c":           cCode("y", 1),
		"lib/COPYING":         string(licenseText(t, "GPL-2")),
		"lib/COPYING.LIB":     string(licenseText(t, "LGPL-2.1")),
		"lib/z.c":             cCode("z", 1),
		"mpl/LICENSE.md":      string(licenseText(t, "MPL-2.0")),
		"gpl3/COPYING":        string(licenseText(t, "GPL-3")),
		"gpl3/COPYING.LESSER": string(licenseText(t, "LGPL-3")),
		"notice/LICENCE":      comment("sh", noticeFrom(t, "GPL-2", "This program is free software")),
		"spdx/COPYING":        "The files here are provided under:\n\n\tSPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note\n",
		"unknown/COPYRIGHT":   "All rights reserved. Ask before you copy.\n",
		"unknown/u.c":         cCode("u", 1),
	})
	src, err := OpenSource("project=" + root)
	must(t, err)
	r := walkAll(t, src, Options{})
	must(t, r.err)
	must(t, r.repos.Detect())

	type repoWant struct {
		root, name, license string
		files               []string
	}
	want := []repoWant{
		{"", "project", "GPL-2.0-only", []string{"COPYING"}},
		{"a", "a", "BSD-3-Clause", []string{"LICENSE"}},
		{"a/b", "a/b", "Apache-2.0", []string{"LICENSE-2.0"}},
		{"gpl3", "gpl3", "LGPL-3.0-only", []string{"COPYING.LESSER"}},
		{"lib", "lib", "LGPL-2.1-only", []string{"COPYING.LIB"}},
		{"mpl", "mpl", "MPL-2.0", []string{"LICENSE.md"}},
		{"notice", "notice", "GPL-2.0-or-later", []string{"LICENCE"}},
		{"spdx", "spdx", "GPL-2.0 WITH Linux-syscall-note", []string{"COPYING"}},
		{"unknown", "unknown", "", nil},
	}
	var got []repoWant
	for _, repo := range r.repos.All() {
		got = append(got, repoWant{repo.Root, repo.Name, repo.License, repo.LicenseFiles})
		if repo.License != "" && (repo.Confidence < MinConfidence || repo.Confidence > 1) {
			t.Errorf("repo %q: confidence %v", repo.Root, repo.Confidence)
		}
		if _, err := license.Classify(repo.License); err != nil {
			t.Errorf("repo %q: license %q: %v", repo.Root, repo.License, err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("repos\n got %+v\nwant %+v", got, want)
	}
	for p, wantRoot := range map[string]string{
		"main.c": "", "a/x.c": "a", "a/b/c/y.c": "a/b", "a/b/LICENSE-2.0": "a/b", "lib/z.c": "lib",
		"lib/sub/deep/q.c": "lib", "ab/x.c": "", "unknown/u.c": "unknown", "x": "",
	} {
		if got := r.repos.For(p).Root; got != wantRoot {
			t.Errorf("For(%q) = %q, want %q", p, got, wantRoot)
		}
	}
}

func TestReposTopDir(t *testing.T) {
	bsd := string(licenseText(t, "BSD"))
	tests := []struct {
		name     string
		files    []tfile
		wantRoot string
		wantLic  string
	}{
		{"one top dir with license", []tfile{{name: "pkg-1.0/", typ: '5'}, {name: "pkg-1.0/LICENSE", data: bsd}, {name: "pkg-1.0/a.c", data: "int a;\n"}}, "pkg-1.0", "BSD-3-Clause"},
		{"one top dir, no license", []tfile{{name: "pkg-1.0/a.c", data: "int a;\n"}, {name: "pkg-1.0/sub/b.c", data: "int b;\n"}}, "pkg-1.0", ""},
		{"two top dirs", []tfile{{name: "a/LICENSE", data: bsd}, {name: "b/x.c", data: "int x;\n"}}, "", ""},
		{"file at the root", []tfile{{name: "pkg/LICENSE", data: bsd}, {name: "README", data: "hi\n"}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeArchive(t, t.TempDir(), "src", KindTar, tt.files)
			src, err := OpenSource(p)
			must(t, err)
			r := walkAll(t, src, Options{})
			must(t, r.err)
			must(t, r.repos.Detect())
			base := r.repos.All()[0]
			if base.Root != tt.wantRoot || base.Name != "src" || base.License != tt.wantLic {
				t.Errorf("base repo %q named %q with %q, want %q named src with %q", base.Root, base.Name, base.License, tt.wantRoot, tt.wantLic)
			}
		})
	}
}

func TestCombineLicenses(t *testing.T) {
	tests := []struct {
		name  string
		found []detected
		want  string
	}{
		{"none", nil, ""},
		{"LGPL beats GPL", []detected{{id: "GPL-2.0-only", conf: 0.98, text: true}, {id: "LGPL-2.1-only", conf: 0.99, text: true}}, "LGPL-2.1-only"},
		{"LGPL-3 beats GPL-3", []detected{{id: "GPL-3.0-only", conf: 0.98, text: true}, {id: "LGPL-3.0-only", conf: 0.99, text: true}}, "LGPL-3.0-only"},
		{"LGPL-2.1 and GPL-3 both", []detected{{id: "GPL-3.0-only", conf: 0.98, text: true}, {id: "LGPL-2.1-only", conf: 0.99, text: true}}, "GPL-3.0-only AND LGPL-2.1-only"},
		{"notice says later", []detected{{id: "GPL-2.0-only", conf: 0.98, text: true}, {id: "GPL-2.0-or-later", conf: 0.9}}, "GPL-2.0-or-later"},
		{"AND of others", []detected{{id: "MIT", conf: 0.98, text: true}, {id: "Apache-2.0", conf: 0.97, text: true}}, "Apache-2.0 AND MIT"},
		{"OR in parens", []detected{{id: "MIT", conf: 0.98, text: true}, {id: "GPL-2.0 OR BSD-2-Clause", conf: 1}}, "(GPL-2.0 OR BSD-2-Clause) AND MIT"},
		{"same twice", []detected{{id: "MIT", conf: 0.9, file: "a"}, {id: "MIT", conf: 0.95, file: "b"}}, "MIT"},
	}
	for _, tt := range tests {
		got, _, _ := combineLicenses(tt.found)
		if got != tt.want {
			t.Errorf("%s: combineLicenses = %q, want %q", tt.name, got, tt.want)
		}
	}
	if d, ok := pickMatch(map[string]float32{"GPL-2.0-or-later": 0.987, "GPL-2.0-only": 0.986, "deprecated_GPL-2.0": 0.987, "LGPL-2.0-only": 0.83}); !ok || d.id != "GPL-2.0-only" {
		t.Errorf("pickMatch(GPL-2 text) = %+v, %v; want GPL-2.0-only", d, ok)
	}
	if d, ok := pickMatch(map[string]float32{"MPL-2.0": 0.974, "MPL-2.0-no-copyleft-exception": 0.974}); !ok || d.id != "MPL-2.0" {
		t.Errorf("pickMatch(MPL text) = %+v, %v; want MPL-2.0", d, ok)
	}
	if d, ok := pickMatch(map[string]float32{"Apache-2.0": 0.985, "ECL-2.0": 0.899}); !ok || d.id != "Apache-2.0" {
		t.Errorf("pickMatch(Apache text) = %+v, %v; want Apache-2.0", d, ok)
	}
	if d, ok := pickMatch(map[string]float32{"MIT": 0.7}); ok {
		t.Errorf("pickMatch(weak match) = %+v, want none", d)
	}
}
