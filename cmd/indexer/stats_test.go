package main

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

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
