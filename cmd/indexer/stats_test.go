package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cleanroom/corpus/license"
	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
)

// TestStatsJSON checks that `indexer stats --format json` says what the index
// holds and how fresh it is: build and time, age, sources with their versions,
// licenses, totals.
func TestStatsJSON(t *testing.T) {
	root := t.TempDir()
	proj := filepath.Join(root, "proj")
	writeFile(t, filepath.Join(proj, "COPYING"), commonLicense(t, "GPL-2"))
	g := gencode.New(5)
	writeFile(t, filepath.Join(proj, "a.c"), g.CFile("", 4))
	writeFile(t, filepath.Join(proj, "b.c"), g.CFile("// SPDX-License-Identifier: LGPL-2.1-only\n", 4))
	ix := filepath.Join(root, "ix")
	if r := run(t, "", "build", "--out", ix, "proj="+proj); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	r := run(t, "", "stats", "--format", "json", ix)
	var st struct {
		Build      string    `json:"build"`
		Created    time.Time `json:"created"`
		AgeSeconds *int64    `json:"age_seconds"`
		Threshold  int       `json:"threshold"`
		Sources    []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Files   int    `json:"files"`
			Indexed int    `json:"indexed"`
		} `json:"sources"`
		Licenses map[string]int `json:"licenses"`
		Totals   struct{ Docs int }
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("stats: exit %d %v\n%s", r.code, err, r.stdout)
	}
	if st.Build == "" || time.Since(st.Created) > time.Hour || st.AgeSeconds == nil || *st.AgeSeconds < 0 || *st.AgeSeconds > 3600 ||
		st.Threshold != 34 || len(st.Sources) != 1 || st.Sources[0].Name != "proj" || st.Sources[0].Indexed != 2 ||
		st.Licenses["GPL-2.0-only"] != 1 || st.Licenses["LGPL-2.1-only"] != 1 || st.Totals.Docs != 2 {
		t.Errorf("stats --format json:\n%s", r.stdout)
	}
}

// TestCanonicalLicenseIDs checks that the build summary, `stats` (text and JSON),
// scan's JSON and SARIF name licenses by their canonical SPDX ids whatever spelling
// the files use (the kernel's "GPL-2.0", "GPL-2.0+", "(GPL-2.0)"), scan keeping the
// text as found in license_as_found.
func TestCanonicalLicenseIDs(t *testing.T) {
	root := t.TempDir()
	proj := filepath.Join(root, "proj")
	writeFile(t, filepath.Join(proj, "COPYING"), commonLicense(t, "GPL-2"))
	g := gencode.New(31)
	files := []struct{ spdx, want string }{
		{"GPL-2.0", "GPL-2.0-only"},
		{"GPL-2.0+", "GPL-2.0-or-later"},
		{"(GPL-2.0)", "GPL-2.0-only"},
		{"GPL-2.0-only", "GPL-2.0-only"},
		{"GPL-2.0-or-later", "GPL-2.0-or-later"},
		{"GPL-2.0 WITH Linux-syscall-note", "GPL-2.0-only WITH Linux-syscall-note"},
		{"LGPL-2.1+", "LGPL-2.1-or-later"},
		{"(GPL-2.0+ OR BSD-3-Clause) AND LGPL-2.1", "(GPL-2.0-or-later OR BSD-3-Clause) AND LGPL-2.1-only"},
	}
	want := map[string]int{}
	var texts []string
	for i, f := range files {
		texts = append(texts, g.CFile("/* SPDX-License-Identifier: "+f.spdx+" */\n", 6))
		writeFile(t, filepath.Join(proj, fmt.Sprintf("src/f%d.c", i)), texts[i])
		want[f.want]++
	}
	canonical := func(t *testing.T, what, out string, got map[string]int) {
		t.Helper()
		if !maps.Equal(got, want) {
			t.Errorf("%s: licenses %v, want %v\n%s", what, got, want, out)
		}
	}
	// textLicenses reads the count lines that follow a heading line.
	textLicenses := func(out, heading string) map[string]int {
		got := map[string]int{}
		_, rest, _ := strings.Cut(out, heading+"\n")
		for _, line := range strings.Split(rest, "\n") {
			var n int
			if !strings.HasPrefix(line, "    ") {
				break
			}
			f := strings.Fields(line)
			fmt.Sscan(f[0], &n)
			got[strings.Join(f[1:], " ")] = n
		}
		return got
	}
	ix := filepath.Join(root, "ix")
	r := run(t, "", "build", "--out", ix, "proj="+proj)
	if r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	canonical(t, "build summary", r.stdout, textLicenses(r.stdout, "  licenses of files read:"))

	r = run(t, "", "stats", ix)
	canonical(t, "stats", r.stdout, textLicenses(r.stdout, "  licenses:"))

	r = run(t, "", "stats", "--format", "json", ix)
	var st struct {
		Licenses map[string]int `json:"licenses"`
		Repos    []struct {
			License string `json:"license"`
		} `json:"repos"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	canonical(t, "stats --format json", r.stdout, st.Licenses)
	for _, rp := range st.Repos {
		if c, _ := license.Canonical(rp.License); c != rp.License {
			t.Errorf("repository license %q is not canonical", rp.License)
		}
	}

	work := filepath.Join(root, "work")
	for i, f := range files {
		t.Run(f.spdx, func(t *testing.T) {
			code, _, _ := excerpt(t, fingerprint.C, texts[i], 8, 47)
			name := filepath.Join(work, fmt.Sprintf("copy%d.c", i))
			writeFile(t, name, code)
			r := run(t, "", "scan", "--index", ix, "--format", "json", name)
			var rep struct {
				Matches []struct {
					Source struct {
						Path           string `json:"path"`
						License        string `json:"license"`
						LicenseAsFound string `json:"license_as_found"`
					} `json:"source"`
				} `json:"matches"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Matches) == 0 {
				t.Fatalf("scan: exit %d %v\n%s", r.code, err, r.stdout)
			}
			asFound := f.spdx
			if asFound == f.want {
				asFound = ""
			}
			for _, m := range rep.Matches {
				if m.Source.License != f.want || m.Source.LicenseAsFound != asFound {
					t.Errorf("scan: %s licensed %q as found %q, want %q as found %q", m.Source.Path, m.Source.License, m.Source.LicenseAsFound, f.want, asFound)
				}
			}
			r = run(t, "", "scan", "--index", ix, "--format", "sarif", name)
			var log struct {
				Runs []struct {
					Results []struct {
						Properties map[string]any `json:"properties"`
					} `json:"results"`
				} `json:"runs"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &log); err != nil || len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
				t.Fatalf("scan --format sarif: exit %d %v\n%s", r.code, err, r.stdout)
			}
			for _, res := range log.Runs[0].Results {
				got, _ := res.Properties["licenseAsFound"].(string)
				if res.Properties["license"] != f.want || got != asFound {
					t.Errorf("SARIF properties %v, want license %q as found %q", res.Properties, f.want, asFound)
				}
			}
		})
	}
}
