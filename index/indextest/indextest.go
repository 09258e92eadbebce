// Package indextest builds small indexes of generated code for tests, and checks
// what of them a text holds.
package indextest

import (
	"fmt"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
	"cleanroom/index"
)

// A Repo asks for Files generated C files under License, each of Funcs functions,
// and then the C files Texts, as given.
type Repo struct {
	Name, License string
	Files, Funcs  int
	Texts         []string
}

// Build writes an index of generated C to dir, with the default parameters and a
// filter of all k-grams (as indexer build makes by default): the
// files of each repository are src/<name><i>.c, with URLs under
// https://example.org/<name>/. It returns the texts of each repository's files; the
// same seed gives the same texts.
func Build(dir string, seed uint64, repos ...Repo) (map[string][]string, error) {
	return build(dir, seed, false, repos)
}

// BuildRename is Build with rename-robust fingerprints too (indexer build --rename),
// with the default parameters.
func BuildRename(dir string, seed uint64, repos ...Repo) (map[string][]string, error) {
	return build(dir, seed, true, repos)
}

func build(dir string, seed uint64, rename bool, repos []Repo) (map[string][]string, error) {
	g := gencode.New(seed)
	opts := index.BuildOptions{Params: fingerprint.DefaultParams}
	if rename {
		opts.Rename = fingerprint.DefaultRenameParams
	}
	b, err := index.NewBuilder(dir, opts)
	if err != nil {
		return nil, err
	}
	texts := map[string][]string{}
	b.InitKGrams(int64(len(repos))*10000, 10)
	for _, repo := range repos {
		r := b.AddRepo(index.Repo{Name: repo.Name, License: repo.License, URL: "https://example.org/" + repo.Name + "/{path}#L{start}-L{end}"})
		for i := 0; i < repo.Files+len(repo.Texts); i++ {
			var text string
			if i < repo.Files {
				text = g.CFile("", max(repo.Funcs, 1))
			} else {
				text = repo.Texts[i-repo.Files]
			}
			texts[repo.Name] = append(texts[repo.Name], text)
			s := fingerprint.NewStream(fingerprint.DefaultParams, fingerprint.C)
			s.CollectKGrams()
			if rename {
				s.EnableRename(fingerprint.DefaultRenameParams)
			}
			s.Write([]byte(text))
			s.Close()
			b.AddKGrams(s.KGrams)
			d := index.NewDoc(s.Tokens, s.Fingerprints)
			if rename {
				d.AddRenamed(s.Tokens, s.Renamed)
			}
			d.Repo, d.Path, d.License, d.LicenseFrom, d.Lang = r, fmt.Sprintf("src/%s%d.c", repo.Name, i), repo.License, "spdx-line", "c"
			d.Size = int64(len(text))
			if err := b.Add(d); err != nil {
				return nil, err
			}
		}
	}
	if _, err := b.Finish(nil); err != nil {
		return nil, err
	}
	return texts, nil
}

// LongestRun returns the longest stretch of text, read as markdown, that ix holds
// exactly, in tokens: how much of any indexed file a client got. Every fingerprint
// counts, common ones too.
func LongestRun(ix *index.Index, text string) int {
	toks, fps := fingerprint.Fingerprints(ix.Params(), fingerprint.Markdown, []byte(text))
	m := ix.NewMatcher(index.MatchOptions{MinTokens: 1, MaxPostings: -1})
	m.Update(toks, fps)
	longest := 0
	for _, r := range m.Runs(1) {
		longest = max(longest, r.End-r.Start)
	}
	return longest
}
