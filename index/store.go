package index

import (
	"context"

	"cleanroom/fingerprint"
)

// A Store is an index that texts can be matched against: the local shards of an
// index directory (*Index, from Open) or one generation of an index in a Redis
// Cluster (*RedisIndex, from Redis.Open). The proxy and `indexer scan` work the same
// on both.
type Store interface {
	// Meta describes the index: its parameters, totals and what went into it.
	Meta() *Manifest
	// Params returns the fingerprint parameters queries must use.
	Params() fingerprint.Params
	// RenameParams returns the parameters of the rename-robust fingerprints, and
	// whether the index has any.
	RenameParams() (fingerprint.Params, bool)
	// NewMatcher returns a matcher for one text.
	NewMatcher(MatchOptions) *Matcher
	// Fingerprint tokenizes and fingerprints a whole text with the index's
	// parameters.
	Fingerprint(l fingerprint.Lang, text []byte, rename bool) *fingerprint.Stream
	// ScanContext fingerprints a whole text and returns its matches; it fails only
	// where the index cannot be read.
	ScanContext(ctx context.Context, l fingerprint.Lang, text []byte, opts MatchOptions) ([]Match, error)
	// HasKGramFilter reports whether the index has a filter of all its k-grams,
	// and MayHaveKGram asks it (true without one).
	HasKGramFilter() bool
	MayHaveKGram(h uint64) bool
	NumDocs() int
	NumPostings() int
	// Close releases what the index holds. It must not be used afterwards.
	Close() error
}

var (
	_ Store = (*Index)(nil)
	_ Store = (*RedisIndex)(nil)
)

// postingTable is where a Matcher looks fingerprints up.
type postingTable interface {
	// find returns the range [lo, hi) of the postings of hash h for ref, and n,
	// how many postings the index holds for h: a remote index does not bring the
	// postings of a fingerprint too common to be looked up, only their number.
	find(h uint64) (lo, hi, n int)
	ref(i int) (doc, pos int)
}

// docSource gives a Matcher the documents postings point into.
type docSource interface {
	checks(d int) checkSeq
	isIdent(d, i int) bool
	lineTable(d int) lineTable
	Doc(d int) DocInfo
}

// A prefetcher brings what a remote index holds for new fingerprints (their
// postings, and the documents those point into) before the Matcher looks them up.
type prefetcher interface {
	prefetch(ctx context.Context, fps []fingerprint.Fingerprint, opts MatchOptions) error
}

func (t *table) find(h uint64) (lo, hi, n int) {
	lo, hi = t.lookup(h)
	return lo, hi, hi - lo
}

// Meta returns the index's manifest.
func (ix *Index) Meta() *Manifest { return ix.Manifest }

// ScanContext is Scan; a local index cannot fail to be read.
func (ix *Index) ScanContext(ctx context.Context, l fingerprint.Lang, text []byte, opts MatchOptions) ([]Match, error) {
	return ix.Scan(l, text, opts), nil
}

// fingerprintText tokenizes and fingerprints a whole text with parameters p, and
// with the rename-robust ones rp too when rename is set and the index has them.
func fingerprintText(p fingerprint.Params, rp fingerprint.Params, hasRename bool, l fingerprint.Lang, text []byte, rename bool) *fingerprint.Stream {
	s := fingerprint.NewStream(p, l)
	if hasRename && rename {
		s.EnableRename(rp)
	}
	s.Tokens = make([]fingerprint.Token, 0, len(text)/5+16)
	s.Write(text)
	s.Close()
	return s
}
