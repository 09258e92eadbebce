package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"cleanroom/corpus"
	"cleanroom/corpus/build"
	"cleanroom/fingerprint"
	"cleanroom/index"
)

// result is what an evaluation found.
type result struct {
	params    fingerprint.Params
	rename    fingerprint.Params
	manifest  *index.Manifest
	positives []editResult
	// generated is the verbatim edit over passages of generated files indexed for
	// their copyleft notice, genFiles how many such files the index holds.
	generated editResult
	genFiles  int
	below     count // passages one token short of the threshold: reports must be 0
	negatives []negResult
	leak      []leakResult
	elapsed   interface{ String() string }
}

// count is a tally.
type count struct{ n, hit int }

func (c count) rate() float64 {
	if c.n == 0 {
		return 0
	}
	return float64(c.hit) / float64(c.n)
}

type editResult struct {
	edit
	all        count // every sampled passage
	boiler     int   // misses that the boilerplate rules explain (common, allowed, no evidence)
	causes     map[string]int
	causeEx    map[string][]string
	wrongSrc   int // hits whose source is not the sampled file (nor a copy of it)
	byLen      map[int]*count
	missSample []string
}

// goHalf reports whether a file of Go's tree is in the half that makes the allow
// set (the other half is a negative set): a fixed split by path.
func goHalf(rel string) bool {
	h := fnv.New32a()
	io.WriteString(h, rel)
	return h.Sum32()%2 == 0
}

func run(c *config) (*result, error) {
	ctx := context.Background()
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return nil, err
	}
	allowDir, err := copyGoHalf(c)
	if err != nil {
		return nil, err
	}
	ix, err := buildIndex(ctx, c, allowDir)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	r := &result{params: ix.Params(), manifest: ix.Manifest}
	r.rename, _ = ix.RenameParams()
	ps, below, gen, genFiles, err := samplePassages(ctx, c, ix)
	if err != nil {
		return nil, err
	}
	c.log.Info("passages sampled", "passages", len(ps), "below-threshold", len(below), "generated", len(gen), "generated-files", genFiles)
	r.positives = evalPositives(c, ix, ps)
	r.generated, r.genFiles = evalEdit(c, ix, edits[0], gen, rand.New(rand.NewPCG(c.seed, 4)), "generated-"), genFiles
	for _, p := range below {
		r.below.n++
		if len(ix.Scan(fingerprint.Markdown, []byte(belowThreshold(p)), index.MatchOptions{})) > 0 {
			r.below.hit++
		}
	}
	if r.negatives, err = evalNegatives(ctx, c, ix); err != nil {
		return nil, err
	}
	if r.leak, err = evalLeak(c, ix, ps); err != nil {
		return nil, err
	}
	return r, nil
}

// copyGoHalf copies the half of Go's source tree that makes the allow set.
func copyGoHalf(c *config) (string, error) {
	dir := filepath.Join(c.out, "_allow-go") // "_": not a Go package to go test ./...
	// The copy is of one Go release's tree: a run on another makes it anew.
	stamp := c.goroot + " " + runtime.Version()
	if old, err := os.ReadFile(filepath.Join(dir, ".complete")); err == nil && string(old) == stamp {
		return dir, nil
	}
	os.RemoveAll(dir)
	src := filepath.Join(c.goroot, "src")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if _, ok := fingerprint.LangForPath(rel); !ok || !goHalf(rel) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		out := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(out), 0o755)
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, ".complete"), []byte(stamp), 0o644)
}

// indexRules names the rules by which the indexer picks files and licenses, for the
// index's stamp: change it when they change, so that the next run builds anew.
const indexRules = "generated-with-copyleft-notice,canonical-licenses"

// buildIndex builds the evaluation's index, or reuses the one a run with the same
// sources, parameters and rules built.
func buildIndex(ctx context.Context, c *config, allowDir string) (*index.Index, error) {
	dir := filepath.Join(c.out, "index")
	sources := []string{c.kernel, "emacs=" + c.emacs, c.glibc}
	// The stamp names the corpora's versions too: an index of another version of a
	// package must not be reused, as the passages are cut from the installed files.
	stamp := fmt.Sprintf("%v %v %v %v %d kgrams=8 go=%s %s rules=%s", sources, sourceVersions(sources), fingerprint.DefaultParams,
		fingerprint.DefaultRenameParams, fingerprint.TokenizerVersion, c.goroot, runtime.Version(), indexRules)
	if old, err := os.ReadFile(dir + ".stamp"); err == nil && string(old) == stamp {
		if ix, err := index.Open(dir, index.OpenOptions{}); err == nil {
			c.log.Info("reusing the index", "dir", dir)
			return ix, nil
		}
	}
	c.log.Info("building the index", "dir", dir, "sources", sources)
	b, err := build.New(build.Options{Out: dir, Rename: fingerprint.DefaultRenameParams, KGramBits: 8,
		Allow: []string{"go-half=" + allowDir}, Log: c.log}, sources)
	if err != nil {
		return nil, err
	}
	sum, err := b.Run(ctx)
	if err != nil {
		return nil, err
	}
	c.log.Info("index built", "docs", sum.Manifest.Totals.Docs, "took", sum.Elapsed)
	if err := os.WriteFile(dir+".stamp", []byte(stamp), 0o644); err != nil {
		return nil, err
	}
	return index.Open(dir, index.OpenOptions{})
}

// sourceVersions returns what identifies the content of each source: its version
// (a Debian package's, as the index records it) and, for a file, its size and time.
func sourceVersions(specs []string) []string {
	var out []string
	for _, spec := range specs {
		v := "?"
		if src, err := corpus.OpenSource(spec); err == nil {
			v = src.Version
			if fi, err := os.Stat(src.Path); err == nil && fi.Mode().IsRegular() {
				v += fmt.Sprintf(" %d %d", fi.Size(), fi.ModTime().Unix())
			}
		}
		out = append(out, v)
	}
	return out
}

// lengths are the passage lengths sampled, in tokens, relative to the threshold t:
// at it, a little above, twice and four times.
func lengths(t int) []int { return []int{t, t + 8, 2 * t, 4 * t} }

// samplePassages picks documents of the index at random, reads them back from the
// corpora, and cuts passages starting at a line's first token: one of each length in
// turn, and one a token short of the threshold. Besides, it cuts c.genSamples
// passages from the generated files the index holds for their copyleft notice
// (gen), of the lengths in turn, and counts those files.
func samplePassages(ctx context.Context, c *config, ix *index.Index) (ps, below, gen []*passage, genFiles int, err error) {
	rng := rand.New(rand.NewPCG(c.seed, c.seed^0xe7a1))
	t := ix.Params().Threshold()
	lens := lengths(t)
	want := map[string]int{} // "repo\x00path" -> how many passages to cut
	var keys []string
	for tries := 0; len(keys) < c.samples && tries < 100*c.samples; tries++ {
		d := ix.Doc(rng.IntN(ix.NumDocs()))
		if d.Tokens < 4*t+50 {
			continue
		}
		k := d.Repo.Name + "\x00" + d.Path
		if want[k] == 0 {
			keys = append(keys, k)
		}
		want[k]++
	}
	texts, gens, err := readDocs(ctx, c, ix, want)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	for i, k := range keys {
		text, ok := texts[k]
		if !ok {
			continue
		}
		_, path, _ := strings.Cut(k, "\x00")
		l, _ := fingerprint.LangForPath(path)
		toks := fingerprint.Tokenize(l, []byte(text))
		for j := 0; j < want[k]; j++ {
			n := lens[(i+j)%len(lens)]
			if p := cut(rng, k, l, text, toks, n); p != nil {
				ps = append(ps, p)
			}
			if p := cut(rng, k, l, text, toks, t-1); p != nil {
				below = append(below, p)
			}
		}
	}
	return ps, below, sampleGenerated(c, gens, lens), len(gens), nil
}

// sampleGenerated cuts up to c.genSamples passages from the texts of generated
// files, of the lengths in turn, at most one of each length from a file. The files
// are taken a directory at a time in turn, in random order within each: one
// generator often writes a whole directory (the kernel's habanalabs register
// headers are most of its generated files), and the sample is of generators.
func sampleGenerated(c *config, texts map[string]string, lens []int) []*passage {
	rng := rand.New(rand.NewPCG(c.seed, 3))
	byDir := map[string][]string{}
	for _, k := range slices.Sorted(maps.Keys(texts)) {
		d := path.Dir(k)
		byDir[d] = append(byDir[d], k)
	}
	dirs := slices.Sorted(maps.Keys(byDir))
	rng.Shuffle(len(dirs), func(i, j int) { dirs[i], dirs[j] = dirs[j], dirs[i] })
	for _, d := range dirs {
		ks := byDir[d]
		rng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
	}
	var keys []string
	for i := 0; len(keys) < len(texts); i++ {
		for _, d := range dirs {
			if i < len(byDir[d]) {
				keys = append(keys, byDir[d][i])
			}
		}
	}
	var out []*passage
	for round := range lens {
		for i, k := range keys {
			if len(out) >= c.genSamples {
				return out
			}
			_, path, _ := strings.Cut(k, "\x00")
			l, _ := fingerprint.LangForPath(path)
			toks := fingerprint.Tokenize(l, []byte(texts[k]))
			if p := cut(rng, k, l, texts[k], toks, lens[(i+round)%len(lens)]); p != nil {
				p.generated = true
				out = append(out, p)
			}
		}
	}
	return out
}

// cut takes n tokens of a text from the first token of a random line.
func cut(rng *rand.Rand, key string, l fingerprint.Lang, text string, toks []fingerprint.Token, n int) *passage {
	if len(toks) < n+1 {
		return nil
	}
	start := rng.IntN(len(toks) - n)
	for start > 0 && toks[start-1].Line == toks[start].Line {
		start--
	}
	return &passage{doc: strings.Replace(key, "\x00", " ", 1), lang: l, text: text, toks: toks, start: start, n: n}
}

// readDocs walks the corpora again for the texts of the documents wanted, by the
// repository and path the index gives them, and for those of every indexed file
// that is generated code the walk keeps for its copyleft notice (gens).
func readDocs(ctx context.Context, c *config, ix *index.Index, want map[string]int) (texts, gens map[string]string, err error) {
	texts, gens = map[string]string{}, map[string]string{}
	indexed := map[string]bool{}
	for d := range ix.NumDocs() {
		info := ix.Doc(d)
		indexed[info.Repo.Name+"\x00"+info.Path] = true
	}
	for _, spec := range []string{c.kernel, "emacs=" + c.emacs, c.glibc} {
		src, err := corpus.OpenSource(spec)
		if err != nil {
			return nil, nil, err
		}
		var repos []index.Repo // of this source, the deepest root first
		for _, r := range ix.Manifest.Repos {
			if r.Source == src.Name {
				repos = append(repos, r)
			}
		}
		slices.SortFunc(repos, func(a, b index.Repo) int { return len(b.Root) - len(a.Root) })
		err = corpus.Walk(ctx, src, corpus.Options{}, nil, nil, func(f *corpus.File) error {
			for _, r := range repos {
				rel := f.Path
				if r.Root != "" {
					var ok bool
					if rel, ok = strings.CutPrefix(f.Path, r.Root+"/"); !ok {
						continue
					}
				}
				k := r.Name + "\x00" + rel
				if want[k] > 0 {
					texts[k] = string(f.Data)
				}
				if f.Generated && indexed[k] {
					gens[k] = string(f.Data)
				}
				break
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return texts, gens, nil
}

// evalPositives scans every passage under every edit.
func evalPositives(c *config, ix *index.Index, ps []*passage) []editResult {
	rng := rand.New(rand.NewPCG(c.seed, 2))
	var out []editResult
	for _, e := range edits {
		r := evalEdit(c, ix, e, ps, rng, "")
		c.log.Info("edit", "name", e.name, "recall", fmt.Sprintf("%.1f%%", 100*r.all.rate()))
		out = append(out, r)
	}
	return out
}

// evalEdit scans every passage under one edit; the passages it writes out with
// --dump-misses have names that start with dump.
func evalEdit(c *config, ix *index.Index, e edit, ps []*passage, rng *rand.Rand, dump string) editResult {
	loose := index.MatchOptions{NoAllow: true, MaxPostings: -1, MinEvidence: -1}
	r := editResult{edit: e, byLen: map[int]*count{}, causes: map[string]int{}, causeEx: map[string][]string{}}
	rt, _ := ix.RenameParams()
	for _, p := range ps {
		text := e.apply(p, rng)
		if text == "" {
			continue
		}
		l := e.lang(p)
		ms := ix.Scan(l, []byte(text), index.MatchOptions{Rename: e.rename})
		lc := r.byLen[p.n]
		if lc == nil {
			lc = &count{}
			r.byLen[p.n] = lc
		}
		lc.n++
		if len(ms) > 0 {
			lc.hit++
		}
		// Rename-robust matching guarantees runs of its own, longer threshold.
		if e.rename && p.n < rt.Threshold() {
			continue
		}
		r.all.n++
		if len(ms) > 0 {
			r.all.hit++
			if !fromDoc(ms, p.doc) {
				r.wrongSrc++
			}
			continue
		}
		loose.Rename = e.rename
		if len(ix.Scan(l, []byte(text), loose)) > 0 {
			r.boiler++
			cause := "several rules"
			for name, o := range map[string]index.MatchOptions{
				"common (found in more than 100 places)":       {MaxPostings: -1},
				"in the allow set":                             {NoAllow: true},
				"no evidence (numbers, punctuation, includes)": {MinEvidence: -1},
			} {
				o.Rename = e.rename
				if len(ix.Scan(l, []byte(text), o)) > 0 {
					cause = name
				}
			}
			r.causes[cause]++
			if c.dump != "" && e.name == "verbatim" {
				os.MkdirAll(c.dump, 0o755)
				os.WriteFile(filepath.Join(c.dump, fmt.Sprintf("%s%d.txt", dump, r.boiler)), []byte(cause+"\n"+p.doc+"\n\n"+text), 0o644)
			}
			if len(r.causeEx[cause]) < 2 {
				r.causeEx[cause] = append(r.causeEx[cause], fmt.Sprintf("%s (%d tokens)", p.doc, p.n))
			}
		} else if len(r.missSample) < 3 {
			if c.dump != "" {
				os.MkdirAll(c.dump, 0o755)
				os.WriteFile(filepath.Join(c.dump, fmt.Sprintf("%sother-%s-%d.txt", dump, strings.ReplaceAll(e.name, " ", "_"), len(r.missSample))),
					[]byte(p.doc+"\n\n"+text+"\n\n==== original\n"+p.code()), 0o644)
			}
			r.missSample = append(r.missSample, fmt.Sprintf("%s (%d tokens)", p.doc, p.n))
		}
	}
	return r
}

// fromDoc reports whether a match names the passage's file or says it has copies.
func fromDoc(ms []index.Match, doc string) bool {
	for _, m := range ms {
		if m.Source.Repo.Name+" "+m.Source.Path == doc || m.Others > 0 {
			return true
		}
	}
	return false
}

// jsonLicense reads the license field of an npm package.json.
func jsonLicense(b []byte) string {
	var p struct {
		License any `json:"license"`
	}
	json.Unmarshal(b, &p)
	switch l := p.License.(type) {
	case string:
		return l
	case map[string]any:
		s, _ := l["type"].(string)
		return s
	}
	return ""
}
