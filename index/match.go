package index

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"

	"cleanroom/fingerprint"
)

// MatchOptions configure a Matcher. The zero value means the defaults.
type MatchOptions struct {
	// MinTokens is the shortest match reported, in matched tokens. Default: the
	// index's guarantee threshold t = W+K-1, so that every shared run the
	// fingerprints guarantee to find is reported and no shorter one is.
	MinTokens int
	// MaxPostings: a fingerprint found in more places than this is common code
	// (include lists, loop headers, tables), not evidence of copying, and is
	// ignored. Default 100; negative means no limit.
	MaxPostings int
	// MaxGap: verified runs from one document, in the same order in the query and
	// the source and at most this many tokens apart in both, are one match (code
	// copied with a few lines changed or inserted). Default 12.
	MaxGap int
	// Rename makes the matcher rename-robust, as MOSS is: fingerprints and
	// comparisons see every identifier as one token, and a run holds only as long as
	// the query's identifiers map one to one onto the source's (a consistent
	// renaming). It needs an index with rename-robust fingerprints, and the query's
	// (fingerprint.Stream.EnableRename, Feed). MinTokens then defaults to their
	// threshold, which is longer.
	Rename bool
	// MinEvidence is the share of a run's tokens that must be evidence of
	// expression: identifiers and keywords count whole, words of string literals
	// half (a list of month names is a table), numbers, punctuation and the tokens of
	// include and import lines not at all. A run of constants, an initializer of
	// zeros or a list of includes is a fact or boilerplate, not evidence of
	// copying. A run must also hold at least 4 different identifiers and
	// keywords: args[0], args[1], ... args[6] is an enumeration, not code anyone
	// owns. Default 0.2; negative means no evidence rule at all.
	MinEvidence float64
	// NoAllow looks up the fingerprints that the index's allow set holds too.
	NoAllow bool
}

// A Range is a stretch of a text: tokens [Start, End), their lines and bytes.
type Range struct {
	Start, End         int // token indexes
	StartLine, EndLine int // lines of the first and the last token
	StartOff, EndOff   int // byte offsets (query side only)
}

// A Match is a stretch of the query that duplicates a stretch of an indexed document.
type Match struct {
	Doc    int // document number in the index
	Source DocInfo
	Query  Range
	Src    Range
	Tokens int // tokens of the query that match the source exactly
	Runs   int // exact runs merged into this match
	// Others counts other documents that the same stretch of the query duplicates
	// as well (copies of one file in several places of a corpus).
	Others int
}

// URL returns a link to the matched lines of the source, or "" where the index
// knows none.
func (m *Match) URL() string {
	u := m.Source.Repo.URL
	if u == "" {
		return ""
	}
	r := strings.NewReplacer("{path}", m.Source.Path, "{start}", strconv.Itoa(m.Src.StartLine), "{end}", strconv.Itoa(m.Src.EndLine))
	return r.Replace(u)
}

// A Matcher finds the stretches of a text that duplicate indexed documents. The text
// may arrive in pieces: Update takes the tokens and fingerprints known so far (a
// fingerprint.Stream's, which only grow), and runs found earlier keep growing as
// tokens arrive. A Matcher is not safe for concurrent use; many Matchers may share
// an Index.
type Matcher struct {
	opts  MatchOptions
	k     int
	tab   postingTable
	docs  docSource
	allow *allowSet
	// fetch, for a remote index, brings the postings of new fingerprints and the
	// documents they point into before they are looked up; nil for local shards.
	fetch prefetcher
	// For local shards, tab and docs as what they are: the hot calls are then
	// direct (and inlined), not through the interfaces.
	localTab  *table
	localDocs *Index
	ctx       context.Context
	err       error

	toks  []fingerprint.Token
	q     checkSeq // check values of the query's tokens
	dir   []bool   // the query's tokens on include and import lines
	line0 int      // the first token of the query's last line
	nfp   int      // fingerprints processed
	spans []*span
	last  map[uint64]*span // the latest span of each document and alignment
	open  []*span          // spans that reach the last known token and may grow
	// Common counts fingerprints ignored for having more than MaxPostings postings,
	// Allowed those ignored for being in the index's allow set.
	Common, Allowed int
}

// span is a run of tokens shared exactly by the query and a document.
type span struct {
	doc    int
	qa, qb int // query tokens [qa, qb)
	sa     int // first source token; the run is as long on both sides
	// In rename-robust mode, the renaming the run implies: query identifier to
	// source identifier and back, by check value.
	q2s, s2q map[uint16]uint16
}

func (s *span) sb() int { return s.sa + s.qb - s.qa }

// NewMatcher returns a matcher for one text.
//
// A rename-robust matcher needs an index opened without SkipRename.
func (ix *Index) NewMatcher(opts MatchOptions) *Matcher {
	p, tab := ix.Params(), &ix.exact
	if opts.Rename {
		p, tab = fingerprint.Params{K: ix.Manifest.RenameK, W: ix.Manifest.RenameW}, &ix.rename
	}
	return newMatcher(opts, p, tab, ix, &ix.allow)
}

// newMatcher returns a matcher with the options' defaults filled in, for
// fingerprints made with p.
func newMatcher(opts MatchOptions, p fingerprint.Params, tab postingTable, docs docSource, allow *allowSet) *Matcher {
	if opts.MinTokens <= 0 {
		opts.MinTokens = p.Threshold()
	}
	if opts.MinEvidence == 0 {
		opts.MinEvidence = 0.2
	}
	if opts.MaxPostings == 0 {
		opts.MaxPostings = 100
	}
	if opts.MaxGap <= 0 {
		opts.MaxGap = 12
	}
	m := &Matcher{opts: opts, k: p.K, tab: tab, docs: docs, allow: allow, ctx: context.Background(), last: map[uint64]*span{}}
	m.localTab, _ = tab.(*table)
	m.localDocs, _ = docs.(*Index)
	return m
}

func (m *Matcher) find(h uint64) (lo, hi, n int) {
	if m.localTab != nil {
		lo, hi = m.localTab.lookup(h)
		return lo, hi, hi - lo
	}
	return m.tab.find(h)
}

func (m *Matcher) ref(i int) (doc, pos int) {
	if m.localTab != nil {
		return m.localTab.ref(i)
	}
	return m.tab.ref(i)
}

func (m *Matcher) checks(d int) checkSeq {
	if m.localDocs != nil {
		return m.localDocs.checks(d)
	}
	return m.docs.checks(d)
}

// Doc describes document d of a match or run the matcher found.
func (m *Matcher) Doc(d int) DocInfo { return m.docs.Doc(d) }

// SetContext sets the context that a remote index's lookups run under (the
// request's); the default is context.Background.
func (m *Matcher) SetContext(ctx context.Context) { m.ctx = ctx }

// Err returns the error that stopped the matcher: a remote index that could not be
// read. The matcher then finds nothing more, and its text counts as unchecked
// from the first fingerprint it could not look up.
func (m *Matcher) Err() error { return m.err }

// Feed updates the matcher from a stream: its tokens, and its exact or its
// rename-robust fingerprints as the matcher's mode wants.
func (m *Matcher) Feed(s *fingerprint.Stream) {
	if m.opts.Rename {
		m.Update(s.Tokens, s.Renamed)
		return
	}
	m.Update(s.Tokens, s.Fingerprints)
}

// Update takes the text's tokens and fingerprints so far; both must extend what the
// previous call got.
func (m *Matcher) Update(toks []fingerprint.Token, fps []fingerprint.Fingerprint) {
	m.toks = toks
	for i := m.q.len(); i < len(toks); i++ {
		m.q = appendCheck(m.q, toks[i].Hash)
		if i > 0 && toks[i].Line > toks[i-1].Line {
			m.line0 = i
		}
		d := fingerprint.Directive(toks[m.line0:min(i+1, m.line0+2)])
		m.dir = append(m.dir, d)
		if d {
			m.dir[m.line0] = true
		}
	}
	open := m.open[:0]
	for _, s := range m.open {
		if m.extend(s) {
			open = append(open, s)
		}
	}
	m.open = open
	if m.err != nil {
		return
	}
	if m.fetch != nil && len(fps) > m.nfp {
		if err := m.fetch.prefetch(m.ctx, fps[m.nfp:], m.opts); err != nil {
			m.err = err
			return
		}
	}
	for _, f := range fps[m.nfp:] {
		m.add(f)
	}
	m.nfp = len(fps)
}

// same reports whether query token i and token j of the source doc (whose check
// values are src) are the same token. In rename-robust mode two identifiers are the
// same if s's renaming maps one onto the other, and then it does from now on.
func (m *Matcher) same(s *span, src checkSeq, i, j int) bool {
	qc, sc := m.q.at(i), src.at(j)
	if !m.opts.Rename {
		return qc == sc
	}
	qi, si := m.toks[i].Kind == fingerprint.Ident, m.docs.isIdent(s.doc, j)
	if qi != si {
		return false
	}
	if !qi {
		return qc == sc
	}
	if to, ok := s.q2s[qc]; ok {
		return to == sc
	}
	if from, ok := s.s2q[sc]; ok {
		return from == qc
	}
	s.q2s[qc], s.s2q[sc] = sc, qc
	return true
}

// extend grows s to the right as far as the query and source agree and reports
// whether it reaches the last known token (so it may grow further).
func (m *Matcher) extend(s *span) bool {
	src := m.checks(s.doc)
	sb := s.sb()
	nq, ns := m.q.len(), src.len()
	for s.qb < nq && sb < ns && m.same(s, src, s.qb, sb) {
		s.qb++
		sb++
	}
	return s.qb == nq && sb < ns
}

// add looks up one fingerprint of the query and starts a span for each posting that
// no span covers yet.
func (m *Matcher) add(f fingerprint.Fingerprint) {
	if !m.opts.NoAllow && m.allow.has(f.Hash, m.opts.Rename) {
		m.Allowed++
		return
	}
	lo, hi, n := m.find(f.Hash)
	if m.opts.MaxPostings > 0 && n > m.opts.MaxPostings {
		m.Common++
		return
	}
	qpos := int(f.Pos)
	for e := lo; e < hi; e++ {
		doc, spos := m.ref(e)
		key := uint64(doc)<<32 | uint64(uint32(int32(spos-qpos)))
		if s := m.last[key]; s != nil && s.qa <= qpos && qpos+m.k <= s.qb {
			continue
		}
		src := m.checks(doc)
		if spos+m.k > src.len() || qpos+m.k > m.q.len() {
			continue // a corrupt posting
		}
		s := &span{doc: doc, qa: qpos, qb: qpos, sa: spos}
		if m.opts.Rename {
			s.q2s, s.s2q = map[uint16]uint16{}, map[uint16]uint16{}
		}
		for s.qb < qpos+m.k && m.same(s, src, s.qb, s.sa+s.qb-s.qa) {
			s.qb++
		}
		if s.qb < qpos+m.k {
			continue // a hash collision, or an inconsistent renaming
		}
		for s.qa > 0 && s.sa > 0 && m.same(s, src, s.qa-1, s.sa-1) {
			s.qa--
			s.sa--
		}
		m.spans = append(m.spans, s)
		m.last[key] = s
		if m.extend(s) {
			m.open = append(m.open, s)
		}
	}
}

// minDistinct is how many different identifiers and keywords a run must hold.
const minDistinct = 4

// An evidence tally weighs tokens as evidence of expression (see
// MatchOptions.MinEvidence).
type evidence struct {
	weight   int // in half tokens: identifiers and keywords 2, words of string literals 1
	distinct map[uint64]struct{}
}

// weigh counts query tokens [a, b), leaving out those of include and import lines.
func (m *Matcher) weigh(e *evidence, a, b int) {
	if e.distinct == nil {
		e.distinct = map[uint64]struct{}{}
	}
	for i, t := range m.toks[a:b] {
		if m.dir[a+i] {
			continue
		}
		switch t.Kind {
		case fingerprint.Ident, fingerprint.Keyword:
			e.weight += 2
			e.distinct[t.Hash] = struct{}{}
		case fingerprint.String:
			e.weight++
		}
	}
}

// enough reports whether e, over n tokens, is evidence enough.
func (m *Matcher) enough(e *evidence, n int) bool {
	return m.opts.MinEvidence < 0 || float64(e.weight) >= 2*m.opts.MinEvidence*float64(n) && len(e.distinct) >= minDistinct
}

// minVariety is the share of a rename-robust run's positions that must start a
// different sequence of three tokens, identifiers all alike: a + x.a, b = x.b, ...
// repeats one short shape, which any renaming maps onto any other such list.
const minVariety = 0.2

// varied reports whether query tokens [a, b) vary enough to be evidence in
// rename-robust mode; in exact mode every run does.
func (m *Matcher) varied(a, b int) bool {
	if !m.opts.Rename || m.opts.MinEvidence < 0 || b-a < 3 {
		return true
	}
	seen := map[[3]uint64]struct{}{}
	for i := a; i+3 <= b; i++ {
		seen[[3]uint64{fingerprint.RenameHash(&m.toks[i]), fingerprint.RenameHash(&m.toks[i+1]), fingerprint.RenameHash(&m.toks[i+2])}] = struct{}{}
	}
	return float64(len(seen)) >= minVariety*float64(b-a-2)
}

// A Run is a stretch of the query that an indexed document holds exactly.
type Run struct {
	Doc        int
	Start, End int // query tokens [Start, End)
	SrcStart   int // the document's token at Start
}

// Runs returns the exact runs found so far that are at least min tokens long, in the
// order they were found. Unlike Matches it merges nothing: a run of t tokens is what
// the fingerprints guarantee to find as soon as its last token is known, so it is
// what a filter that must act before t tokens go out acts on.
func (m *Matcher) Runs(min int) []Run {
	var out []Run
	for _, s := range m.spans {
		var e evidence
		if n := s.qb - s.qa; n >= min {
			m.weigh(&e, s.qa, s.qb)
			if !m.enough(&e, n) || !m.varied(s.qa, s.qb) {
				continue
			}
			out = append(out, Run{Doc: s.doc, Start: s.qa, End: s.qb, SrcStart: s.sa})
		}
	}
	return out
}

// Unproven returns the exact runs found so far of at least min tokens that the
// evidence rules do not count (yet), in the order they were found. A run that
// grows may come to count (identifiers after a stretch of numbers and
// punctuation): a filter that must act before t tokens of a counted run go out
// holds back the text of such a run while it can still grow.
func (m *Matcher) Unproven(min int) []Run {
	var out []Run
	for _, s := range m.spans {
		var e evidence
		if n := s.qb - s.qa; n >= min {
			m.weigh(&e, s.qa, s.qb)
			if m.enough(&e, n) && m.varied(s.qa, s.qb) {
				continue
			}
			out = append(out, Run{Doc: s.doc, Start: s.qa, End: s.qb, SrcStart: s.sa})
		}
	}
	return out
}

// Matches returns the matches found so far, in query order: runs of one document
// merged, those of at least MinTokens tokens kept, and for each stretch of the
// query the document it duplicates most (others are counted in Others).
func (m *Matcher) Matches() []Match {
	spans := slices.Clone(m.spans)
	slices.SortFunc(spans, func(a, b *span) int {
		return cmp.Or(cmp.Compare(a.doc, b.doc), cmp.Compare(a.qa, b.qa), cmp.Compare(a.sa, b.sa))
	})
	var groups []Match
	for i := 0; i < len(spans); {
		g := Match{Doc: spans[i].doc, Runs: 1}
		first, last := spans[i], spans[i]
		g.Tokens = last.qb - last.qa
		var ev evidence
		m.weigh(&ev, last.qa, last.qb)
		j := i + 1
		for ; j < len(spans) && spans[j].doc == g.Doc; j++ {
			s := spans[j]
			if s.qa < last.qb || s.sa < last.sb() || s.qa-last.qb > m.opts.MaxGap || s.sa-last.sb() > m.opts.MaxGap {
				if s.qa >= last.qa && s.qb <= last.qb {
					continue // inside the last run (another alignment of repeated code)
				}
				break
			}
			g.Tokens += s.qb - s.qa
			m.weigh(&ev, s.qa, s.qb)
			g.Runs++
			last = s
		}
		i = j
		if g.Tokens < m.opts.MinTokens || !m.enough(&ev, g.Tokens) || !m.varied(first.qa, last.qb) {
			continue
		}
		g.Query = m.queryRange(first.qa, last.qb)
		g.Src = Range{Start: first.sa, End: last.sb()}
		g.Src.StartLine, g.Src.EndLine = m.docs.lineTable(g.Doc).lines(g.Src.Start, g.Src.End-1)
		g.Source = m.docs.Doc(g.Doc)
		groups = append(groups, g)
	}
	// Longest first; a match mostly inside a longer one's query stretch is the same
	// copy found in another document.
	slices.SortFunc(groups, func(a, b Match) int {
		return cmp.Or(cmp.Compare(b.Tokens, a.Tokens), cmp.Compare(a.Doc, b.Doc))
	})
	var out []Match
	for _, g := range groups {
		dup := false
		for i := range out {
			o := &out[i]
			overlap := min(g.Query.End, o.Query.End) - max(g.Query.Start, o.Query.Start)
			if overlap*2 > g.Query.End-g.Query.Start {
				o.Others++
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b Match) int { return cmp.Compare(a.Query.Start, b.Query.Start) })
	return out
}

func (m *Matcher) queryRange(a, b int) Range {
	r := Range{Start: a, End: b}
	if a < len(m.toks) && b > 0 && b <= len(m.toks) {
		r.StartLine, r.EndLine = int(m.toks[a].Line), int(m.toks[b-1].Line)
		r.StartOff, r.EndOff = int(m.toks[a].Off), int(m.toks[b-1].End)
	}
	return r
}

// Scan fingerprints a whole text and returns its matches.
func (ix *Index) Scan(l fingerprint.Lang, text []byte, opts MatchOptions) []Match {
	m := ix.NewMatcher(opts)
	m.Feed(ix.Fingerprint(l, text, opts.Rename))
	return m.Matches()
}

// Fingerprint tokenizes and fingerprints a whole text with the index's parameters,
// and its rename-robust ones too when rename is set (and the index has them).
func (ix *Index) Fingerprint(l fingerprint.Lang, text []byte, rename bool) *fingerprint.Stream {
	rp, ok := ix.RenameParams()
	return fingerprintText(ix.Params(), rp, ok, l, text, rename)
}
