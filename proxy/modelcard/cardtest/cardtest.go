// Package cardtest writes model directories for tests, in the Hugging Face hub
// cache's layout, with front matter shaped like the cards of well-known models
// (the keys and values their cards carry; no text of theirs).
package cardtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Commits of the snapshots the tests write.
const (
	C1 = "0123456789abcdef0123456789abcdef01234567"
	C2 = "89abcdef0123456789abcdef0123456789abcdef"
)

// Front matter of the cards, by model id.
var (
	// An Apache-2.0 base model.
	Mistral = `license: apache-2.0
pipeline_tag: text-generation
language:
- en
tags:
- pretrained
`
	// A Llama 3 community-license model, as its card first read: license: other.
	Llama3 = `language:
- en
pipeline_tag: text-generation
tags:
- facebook
- meta
- pytorch
- llama
- llama-3
license: other
license_name: llama3
license_link: LICENSE
`
	// A fine-tune of it.
	Llama3FineTune = `license: llama3
base_model: meta-llama/Meta-Llama-3-8B
base_model_relation: finetune
datasets:
- bigcode/the-stack-v2
tags:
- code
- llama-3
`
	// A CC-BY-NC model.
	AyaNC = `license: cc-by-nc-4.0
library_name: transformers
language:
- en
- fr
`
	// Research-only weights (LLaMA 1) and a fine-tune of them claiming Apache-2.0.
	Llama1 = `license: other
license_name: llama-license
license_link: https://github.com/facebookresearch/llama/blob/llama_v1/LICENSE
`
	Llama1FineTune = `license: apache-2.0
base_model:
- huggyllama/llama-7b
tags:
- chat
`
	// A card with Books3 among its datasets.
	Books3 = `license: apache-2.0
datasets:
- the_pile_books3
- wikipedia
`
)

// Write writes a model of the hub cache under root (root/models--ORG--NAME) at
// commit, with a card of front matter fm, and refs/main naming commit; it returns
// the snapshot directory.
func Write(t testing.TB, root, id, commit, fm string) string {
	t.Helper()
	repo := filepath.Join(root, "models--"+strings.ReplaceAll(id, "/", "--"))
	snap := filepath.Join(repo, "snapshots", commit)
	card := "---\n" + fm + "---\n\n# " + id + "\n\nA model card written by a test.\n"
	for _, f := range []struct{ path, data string }{
		{filepath.Join(snap, "README.md"), card},
		{filepath.Join(snap, "config.json"), "{}\n"},
		{filepath.Join(repo, "refs", "main"), commit},
	} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}
