package index

import (
	"os"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
)

// TestBackwardsCompat opens the index committed in testdata/v1, written by format
// version 1, and checks that it still answers as it did. Regenerate it only for a
// deliberate format break: go test -run TestBackwardsCompat -update.
func TestBackwardsCompat(t *testing.T) {
	const dir = "testdata/v1"
	g := gencode.New(2024)
	files := []string{g.CFile("", 4), g.CFile("", 5), g.CFile("", 3)}
	if *update {
		os.RemoveAll(dir)
		b, err := NewBuilder(dir, BuildOptions{Params: fingerprint.DefaultParams})
		if err != nil {
			t.Fatal(err)
		}
		r := b.AddRepo(Repo{Name: "compat", License: "GPL-3.0-or-later", Version: "1.0"})
		for i, f := range files {
			d := NewDoc(fingerprint.Fingerprints(fingerprint.DefaultParams, fingerprint.C, []byte(f)))
			d.Repo, d.Path, d.License, d.LicenseFrom, d.Lang, d.Size = r, []string{"a.c", "b.c", "c.c"}[i], "GPL-3.0-or-later", "repository", "c", int64(len(f))
			b.Add(d)
		}
		if _, err := b.Finish(nil); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatalf("format 1 index no longer opens: %v", err)
	}
	defer ix.Close()
	if problems, err := Verify(dir); err != nil || len(problems) > 0 {
		t.Fatalf("Verify: %v %v", problems, err)
	}
	ls := strings.SplitAfter(files[1], "\n")
	ms := ix.Scan(fingerprint.C, []byte(strings.Join(ls[20:45], "")), MatchOptions{})
	if len(ms) != 1 || ms[0].Source.Path != "b.c" || ms[0].Source.Repo.Version != "1.0" || ms[0].Src.StartLine < 20 {
		t.Fatalf("format 1 index answers %+v", ms)
	}
}
