package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"cleanroom/fingerprint"
)

func hashes(l fingerprint.Lang, text string) []uint64 {
	var hs []uint64
	for _, t := range fingerprint.Tokenize(l, []byte(text)) {
		hs = append(hs, t.Hash)
	}
	return hs
}

// TestEditsKeepTokens checks the edits on real code (Go's tree): those that must
// not change a passage's tokens do not, and the others change what they claim to.
func TestEditsKeepTokens(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "net", "http", "*.go"))
	if len(paths) == 0 {
		t.Skip("Go's tree is not there")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	keep := map[string]bool{"verbatim": true, "re-indented and re-wrapped": true, "comments stripped": true,
		"comments changed": true, "comments added": true, "in a markdown answer": true}
	for _, path := range paths[:min(20, len(paths))] {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		toks := fingerprint.Tokenize(fingerprint.Go, data)
		for trial := 0; trial < 5; trial++ {
			p := cut(rng, "x\x00"+path, fingerprint.Go, string(data), toks, 136)
			if p == nil {
				continue
			}
			want := hashes(fingerprint.Go, p.code())
			for _, e := range edits {
				text := e.apply(p, rng)
				if text == "" {
					continue // the edit does not apply to this passage
				}
				got := hashes(e.lang(p), text)
				switch {
				case e.name == "in a markdown answer":
					if !contains(got, want) {
						t.Fatalf("%s changed the tokens of %s:\n%s", e.name, path, text)
					}
				case keep[e.name]:
					if !slices.Equal(got, want) {
						t.Fatalf("%s changed the tokens of %s:\n%s\n--- from ---\n%s", e.name, path, text, p.code())
					}
				case e.name == "interleaved with original lines":
					if len(got) <= len(want) {
						t.Errorf("%s added nothing", e.name)
					}
				case e.renameEdit():
					if len(got) != len(want) || slices.Equal(got, want) && countIdents(p) > 0 {
						t.Errorf("%s: %d tokens, want %d, renamed", e.name, len(got), len(want))
					}
				}
			}
		}
	}
}

func (e edit) renameEdit() bool { return e.name == "identifiers renamed (exact matching)" }

func countIdents(p *passage) int {
	n := 0
	for _, t := range p.tokens() {
		if t.Kind == fingerprint.Ident {
			n++
		}
	}
	return n
}

// contains reports whether s holds sub as a contiguous run.
func contains(s, sub []uint64) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if slices.Equal(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
