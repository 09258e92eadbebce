package index

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
)

// TestCanonicalLicenses checks that an index reports every license in its canonical
// SPDX form, in its documents, repositories and manifest, with the text as found
// kept where it differs; and that the shard stores the text as found, so that an
// index written before canonical forms reads the same.
func TestCanonicalLicenses(t *testing.T) {
	tests := []struct {
		found, want, asFound string
	}{
		{found: "GPL-2.0", want: "GPL-2.0-only", asFound: "GPL-2.0"},
		{found: "GPL-2.0+", want: "GPL-2.0-or-later", asFound: "GPL-2.0+"},
		{found: "(GPL-2.0)", want: "GPL-2.0-only", asFound: "(GPL-2.0)"},
		{found: "GPL-2.0-only", want: "GPL-2.0-only"},
		{found: "GPL-2.0-or-later", want: "GPL-2.0-or-later"},
		{found: "LGPL-2.1+", want: "LGPL-2.1-or-later", asFound: "LGPL-2.1+"},
		{found: "GPL-2.0 WITH Linux-syscall-note", want: "GPL-2.0-only WITH Linux-syscall-note", asFound: "GPL-2.0 WITH Linux-syscall-note"},
		{found: "(GPL-2.0+ OR MIT)", want: "GPL-2.0-or-later OR MIT", asFound: "(GPL-2.0+ OR MIT)"},
		{found: "LicenseRef-Acme", want: "LicenseRef-Acme"},
		{found: "not an expression", want: "not an expression"},
	}
	dir := t.TempDir()
	b, err := NewBuilder(dir, BuildOptions{Params: fingerprint.DefaultParams})
	if err != nil {
		t.Fatal(err)
	}
	r := b.AddRepo(Repo{Name: "kernel", License: "GPL-2.0"})
	g := gencode.New(7)
	for i, tt := range tests {
		text := g.CFile("", 3)
		d := NewDoc(fingerprint.Fingerprints(fingerprint.DefaultParams, fingerprint.C, []byte(text)))
		d.Repo, d.Path, d.License, d.LicenseFrom, d.Lang, d.Size = r, filepath.Join("f", string(rune('a'+i))+".c"), tt.found, "spdx-line", "c", int64(len(text))
		if err := b.Add(d); err != nil {
			t.Fatal(err)
		}
		if d.License != tt.want || d.LicenseAsFound != tt.asFound {
			t.Errorf("Add(%q): License %q, LicenseAsFound %q; want %q, %q", tt.found, d.License, d.LicenseAsFound, tt.want, tt.asFound)
		}
	}
	m, err := b.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := map[string]int{}
	for _, tt := range tests {
		wantCounts[tt.want]++
	}
	checkManifest := func(t *testing.T, m *Manifest) {
		t.Helper()
		if len(m.Licenses) != len(wantCounts) {
			t.Errorf("manifest licenses %v, want %v", m.Licenses, wantCounts)
		}
		for l, n := range wantCounts {
			if m.Licenses[l] != n {
				t.Errorf("manifest licenses %v, want %v", m.Licenses, wantCounts)
				break
			}
		}
		if len(m.Repos) != 1 || m.Repos[0].License != "GPL-2.0-only" || m.Repos[0].LicenseAsFound != "GPL-2.0" {
			t.Errorf("manifest repos %+v, want GPL-2.0-only as found GPL-2.0", m.Repos)
		}
	}
	checkManifest(t, m)

	check := func(t *testing.T) {
		ix, err := Open(dir, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		checkManifest(t, ix.Manifest)
		if ix.NumDocs() != len(tests) {
			t.Fatalf("%d documents, want %d", ix.NumDocs(), len(tests))
		}
		for i, tt := range tests {
			t.Run(tt.found, func(t *testing.T) {
				d := ix.Doc(i)
				if d.License != tt.want || d.LicenseAsFound != tt.asFound {
					t.Errorf("Doc: License %q, LicenseAsFound %q; want %q, %q", d.License, d.LicenseAsFound, tt.want, tt.asFound)
				}
				if d.Repo.License != "GPL-2.0-only" || d.Repo.LicenseAsFound != "GPL-2.0" {
					t.Errorf("Doc's repository: %+v", *d.Repo)
				}
				// What a Redis cluster holds of the document reads the same.
				rd, err := decodeRemoteDoc(appendRemoteDoc(nil, ix, i))
				if err != nil {
					t.Fatal(err)
				}
				if rd.info.License != tt.want || rd.info.LicenseAsFound != tt.asFound || rd.info.Repo.License != "GPL-2.0-only" || rd.info.Repo.LicenseAsFound != "GPL-2.0" {
					t.Errorf("from Redis: %+v, repository %+v", rd.info, *rd.info.Repo)
				}
			})
		}
	}
	t.Run("built", check)

	// The manifest of an index built before canonical forms counts a license under
	// each of its spellings, and names its repositories' licenses as found.
	t.Run("old manifest", func(t *testing.T) {
		path := filepath.Join(dir, ManifestName)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		old := map[string]int{}
		for _, tt := range tests {
			old[tt.found]++
		}
		raw["licenses"] = old
		raw["repos"] = []map[string]any{{"name": "kernel", "license": "GPL-2.0"}}
		data, _ = json.Marshal(raw)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		checkManifest(t, m)
		check(t)
	})
}
