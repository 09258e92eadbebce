package index

import (
	"cmp"
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
	ix   *Index
	opts MatchOptions
	k    int

	toks  []fingerprint.Token
	q     checkSeq // check values of the query's tokens
	nfp   int      // fingerprints processed
	spans []*span
	last  map[uint64]*span // the latest span of each document and alignment
	open  []*span          // spans that reach the last known token and may grow
	// Common counts fingerprints ignored for having more than MaxPostings postings.
	Common int
}

// span is a run of tokens shared exactly by the query and a document.
type span struct {
	doc    int
	qa, qb int // query tokens [qa, qb)
	sa     int // first source token; the run is as long on both sides
}

func (s *span) sb() int { return s.sa + s.qb - s.qa }

// NewMatcher returns a matcher for one text.
func (ix *Index) NewMatcher(opts MatchOptions) *Matcher {
	p := ix.Params()
	if opts.MinTokens <= 0 {
		opts.MinTokens = p.Threshold()
	}
	if opts.MaxPostings == 0 {
		opts.MaxPostings = 100
	}
	if opts.MaxGap <= 0 {
		opts.MaxGap = 12
	}
	return &Matcher{ix: ix, opts: opts, k: p.K, last: map[uint64]*span{}}
}

// Update takes the text's tokens and fingerprints so far; both must extend what the
// previous call got.
func (m *Matcher) Update(toks []fingerprint.Token, fps []fingerprint.Fingerprint) {
	m.toks = toks
	for _, t := range toks[m.q.len():] {
		m.q = appendCheck(m.q, t.Hash)
	}
	open := m.open[:0]
	for _, s := range m.open {
		if m.extend(s) {
			open = append(open, s)
		}
	}
	m.open = open
	for _, f := range fps[m.nfp:] {
		m.add(f)
	}
	m.nfp = len(fps)
}

// extend grows s to the right as far as the query and source agree and reports
// whether it reaches the last known token (so it may grow further).
func (m *Matcher) extend(s *span) bool {
	src := m.ix.checks(s.doc)
	sb := s.sb()
	nq, ns := m.q.len(), src.len()
	for s.qb < nq && sb < ns && m.q.at(s.qb) == src.at(sb) {
		s.qb++
		sb++
	}
	return s.qb == nq && sb < ns
}

// add looks up one fingerprint of the query and starts a span for each posting that
// no span covers yet.
func (m *Matcher) add(f fingerprint.Fingerprint) {
	lo, hi := m.ix.lookup(f.Hash)
	if m.opts.MaxPostings > 0 && hi-lo > m.opts.MaxPostings {
		m.Common++
		return
	}
	qpos := int(f.Pos)
	for _, ref := range m.ix.refs[lo:hi] {
		doc, spos := int(ref>>32), int(uint32(ref))
		key := uint64(doc)<<32 | uint64(uint32(int32(spos-qpos)))
		if s := m.last[key]; s != nil && s.qa <= qpos && qpos+m.k <= s.qb {
			continue
		}
		src := m.ix.checks(doc)
		if spos+m.k > src.len() || qpos+m.k > m.q.len() || string(src[2*spos:2*(spos+m.k)]) != string(m.q[2*qpos:2*(qpos+m.k)]) {
			continue // a hash collision
		}
		s := &span{doc: doc, qa: qpos, qb: qpos + m.k, sa: spos}
		for s.qa > 0 && s.sa > 0 && m.q.at(s.qa-1) == src.at(s.sa-1) {
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
		if s.qb-s.qa >= min {
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
			g.Runs++
			last = s
		}
		i = j
		if g.Tokens < m.opts.MinTokens {
			continue
		}
		g.Query = m.queryRange(first.qa, last.qb)
		g.Src = Range{Start: first.sa, End: last.sb()}
		g.Src.StartLine, g.Src.EndLine = m.ix.lineTable(g.Doc).lines(g.Src.Start, g.Src.End-1)
		g.Source = m.ix.Doc(g.Doc)
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
		r.StartOff, r.EndOff = m.toks[a].Off, m.toks[b-1].End
	}
	return r
}

// Scan fingerprints a whole text and returns its matches.
func (ix *Index) Scan(l fingerprint.Lang, text []byte, opts MatchOptions) []Match {
	toks, fps := fingerprint.Fingerprints(ix.Params(), l, text)
	m := ix.NewMatcher(opts)
	m.Update(toks, fps)
	return m.Matches()
}
