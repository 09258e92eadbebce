package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

func pct(c count) string {
	if c.n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%% (%d/%d)", 100*c.rate(), c.hit, c.n)
}

// ok reports whether every target is met.
func (r *result) ok() bool {
	for _, e := range r.positives {
		if !e.met() {
			return false
		}
	}
	if r.generated.all.n > 0 && !r.generated.met() {
		return false
	}
	for _, n := range r.negatives {
		if !n.met() {
			return false
		}
	}
	for _, l := range r.leak {
		if l.longest >= l.threshold {
			return false
		}
	}
	return r.below.hit == 0 && len(r.leak) > 0
}

// met reports whether the edit's target is met. Passages that the boilerplate
// rules exclude by design (tables, include lists; see the note) do not count
// against it.
func (e *editResult) met() bool {
	c := e.code()
	switch e.target {
	case "100%":
		return c.hit == c.n
	case ">= 90%":
		return c.rate() >= 0.9
	}
	return true
}

// code counts the passages that are code, not boilerplate the rules exclude.
func (e *editResult) code() count { return count{n: e.all.n - e.boiler, hit: e.all.hit} }

func (n *negResult) met() bool {
	if n.targetFlagged > 0 {
		return float64(n.flagged) <= n.targetFlagged*float64(n.files)
	}
	return n.flagged == 0
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// markdown renders the report.
func (r *result) markdown(c *config) string {
	var b strings.Builder
	t := r.params.Threshold()
	fmt.Fprintf(&b, "# Evaluation\n\n")
	fmt.Fprintf(&b, "Produced by `%s` (what `make eval` runs) on %s, in %s (plus about 2 minutes\n", commandLine(), time.Now().UTC().Format("2006-01-02"), r.elapsed)
	fmt.Fprintf(&b, "the first time, to build the index into out/eval),\n")
	fmt.Fprintf(&b, "on a 2-core, 24 GiB machine. The index holds %d documents (%d tokens) of copyleft code from\n", r.manifest.Totals.Docs, r.manifest.Totals.Tokens)
	var srcs []string
	for _, s := range r.manifest.Sources {
		srcs = append(srcs, fmt.Sprintf("%s %s (%d files)", s.Name, s.Version, s.Indexed))
	}
	fmt.Fprintf(&b, "%s; exact fingerprints %v (guarantee t = %d tokens), rename-robust %v (t = %d);\n", strings.Join(srcs, ", "), r.params, t, r.rename, r.rename.Threshold())
	if a := r.manifest.Allow; a != nil {
		fmt.Fprintf(&b, "allow set: %d fingerprints of half of Go's source tree (the other half is a negative set below).\n", a.Fingerprints)
	}
	fmt.Fprintf(&b, "Passages: %d, sampled with seed %d from indexed files, each starting at a line's first token, of %v tokens in turn.\n", firstOr(r.positives).all.n, c.seed, lengths(t))
	var genRead, genIndexed, genSkipped int64
	for _, s := range r.manifest.Sources {
		genRead, genIndexed, genSkipped = genRead+s.Generated, genIndexed+s.GeneratedIndexed, genSkipped+s.Skipped["generated"]
	}
	fmt.Fprintf(&b, "Generated files (by name or a marker such as \"DO NOT EDIT\") with a copyleft notice or SPDX line of their own are\n")
	fmt.Fprintf(&b, "indexed: %d read, %d indexed; %d without one are skipped. %d passages more are sampled from them, of the same lengths.\n\n",
		genRead, genIndexed, genSkipped, r.generated.all.n)

	fmt.Fprintf(&b, "## Recall: copied passages under the edits models make\n\n")
	fmt.Fprintf(&b, "| edit | reported, all passages | passages of tables and include lists (not reported by design) | reported, the others | target | | other source named |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, e := range r.positives {
		target := e.target
		if target == "" {
			target = "none set"
		}
		name := e.name
		if e.rename {
			name += fmt.Sprintf(", passages of %d+ tokens", r.rename.Threshold())
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %d |\n", name, pct(e.all), e.boiler, pct(e.code()), target, mark(e.met()), e.wrongSrc)
	}
	if g := r.generated; g.all.n > 0 {
		fmt.Fprintf(&b, "| verbatim, passages of generated files with a copyleft notice (%d files indexed) | %s | %d | %s | %s | %s | %d |\n",
			r.genFiles, pct(g.all), g.boiler, pct(g.code()), g.target, mark(g.met()), g.wrongSrc)
	}
	fmt.Fprintf(&b, "| cut one token short of t, in an answer (must not be reported) | %s reported | | | 0 | %s | |\n\n", pct(r.below), mark(r.below.hit == 0))
	fmt.Fprintf(&b, "By passage length (tokens):\n\n| edit |")
	keys := firstOr(r.positives).byLenKeys()
	for _, k := range keys {
		fmt.Fprintf(&b, " %d |", k)
	}
	fmt.Fprintf(&b, "\n| --- |%s\n", strings.Repeat(" --- |", len(keys)))
	for _, e := range r.positives {
		fmt.Fprintf(&b, "| %s |", e.name)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s |", pct(*e.byLen[k]))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nA passage of tables and include lists is one found when every fingerprint and token counts\n")
	fmt.Fprintf(&b, "(`MatchOptions{NoAllow, MaxPostings: -1, MinEvidence: -1}`) but not by default: its runs are made of\n")
	fmt.Fprintf(&b, "numbers, punctuation and include lines, or of fingerprints found in more than 100 places or in the\n")
	fmt.Fprintf(&b, "allow set. The same rules keep the false alarms below at their rate; `--dump-misses DIR` writes them\n")
	fmt.Fprintf(&b, "out for study (all are hex tables, register tables and include lists).\n")
	for _, e := range r.positives[:1] {
		for cause, n := range e.causes {
			fmt.Fprintf(&b, "Verbatim misses %s: %d, e.g. %s.\n", cause, n, strings.Join(e.causeEx[cause], "; "))
		}
	}
	for _, e := range r.positives {
		if len(e.missSample) > 0 {
			fmt.Fprintf(&b, "Other misses, %s: %s.\n", e.name, strings.Join(e.missSample, "; "))
		}
	}
	for cause, n := range r.generated.causes {
		fmt.Fprintf(&b, "Verbatim misses in generated files %s: %d, e.g. %s.\n", cause, n, strings.Join(r.generated.causeEx[cause], "; "))
	}
	if len(r.generated.missSample) > 0 {
		fmt.Fprintf(&b, "Other misses in generated files: %s.\n", strings.Join(r.generated.missSample, "; "))
	}

	fmt.Fprintf(&b, "\n## False alarms: code that must not match\n\n")
	fmt.Fprintf(&b, "| set | files | flagged | matches | target | | flagged without the allow set | flagged rename-robustly |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, n := range r.negatives {
		if n.skipped != "" {
			fmt.Fprintf(&b, "| %s | – | – | – | %s | not run: %s | | |\n", n.name, n.target, n.skipped)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d (%.2f%%) | %d | %s | %s | %d | %d |\n", n.name, n.files, n.flagged,
			100*float64(n.flagged)/float64(max(n.files, 1)), n.matches, n.target, mark(n.met()), n.withoutAllow, n.flaggedRename)
	}
	for _, n := range r.negatives {
		if len(n.examples) > 0 {
			fmt.Fprintf(&b, "\nFlagged in %s, for example: %s.\n", n.name, strings.Join(n.examples, "; "))
		}
	}

	var post, ren int
	for _, s := range r.manifest.Shards {
		post += s.Postings
		ren += s.Renamed
	}
	var renFP []string
	for _, n := range r.negatives {
		if n.skipped == "" {
			renFP = append(renFP, fmt.Sprintf("%d of %d (%s)", n.flaggedRename, n.files, n.name))
		}
	}
	fmt.Fprintf(&b, "\n## Notes\n\n")
	fmt.Fprintf(&b, "- **Rename-robust matching stays off by default** (`indexer build --rename`, `indexer scan --rename`).\n")
	fmt.Fprintf(&b, "  It finds consistently renamed code at or above its threshold as the table shows, but it adds\n")
	fmt.Fprintf(&b, "  %d postings to the %d exact ones (+%.0f%%, in memory wherever it is used: `scan --rename`, and `proxy --rename`, which matches\n", ren, post, 100*float64(ren)/float64(max(post, 1)))
	fmt.Fprintf(&b, "  as scan does, so these false alarms are the proxy's too), only finds runs of\n")
	fmt.Fprintf(&b, "  %d tokens and more, and flags more innocent code: files flagged rename-robustly: %s.\n", r.rename.Threshold(), strings.Join(renFP, "; "))
	fmt.Fprintf(&b, "- The passages a model is likely to reproduce whole are functions and statements; the tables and\n")
	fmt.Fprintf(&b, "  include lists the rules set aside are facts and boilerplate, which the false-alarm targets forbid\n")
	fmt.Fprintf(&b, "  reporting. Everything else sampled is found under every targeted edit.\n")
	fmt.Fprintf(&b, "- The false alarms left in Go's tree are real duplicates: Go's math package and glibc both carry\n")
	fmt.Fprintf(&b, "  Sun's fdlibm (permissive), which glibc's files place under the LGPL.\n")
	fmt.Fprintf(&b, "\n## Leaks: the proxy in block mode\n\n")
	if len(r.leak) > 0 {
		l := r.leak[0]
		fmt.Fprintf(&b, "%d markdown answers quoting passages of %d+ tokens streamed from the test upstream (uneven chunks)\n", l.streams, 2*t)
		fmt.Fprintf(&b, "through the proxy in block mode, in every API it checks. \"Longest run\" is the longest run of indexed\n")
		fmt.Fprintf(&b, "code a client received that the proxy's rules count as a match (t = %d); \"every run\" counts\n", t)
		fmt.Fprintf(&b, "boilerplate the rules ignore too.\n\n")
		fmt.Fprintf(&b, "| API | answers | stopped by the filter | longest run | every run | target < t |\n|---|---|---|---|---|---|\n")
	}
	for _, l := range r.leak {
		fmt.Fprintf(&b, "| %s | %d | %d | **%d** | %d | %s |\n", l.api, l.streams, l.blocked, l.longest, l.longestRaw, mark(l.longest < l.threshold))
	}
	return b.String()
}

func firstOr(es []editResult) *editResult {
	if len(es) == 0 {
		return &editResult{byLen: map[int]*count{}}
	}
	return &es[0]
}

func (e *editResult) byLenKeys() []int {
	var ks []int
	for k := range e.byLen {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
