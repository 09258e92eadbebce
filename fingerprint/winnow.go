package fingerprint

import (
	"errors"
	"fmt"
)

// TokenizerVersion changes whenever a change to the tokenizer or the hashing changes
// the fingerprints of some text. An index records it; a reader with another version
// refuses the index instead of silently matching nothing.
const TokenizerVersion = 2

// Params are the fingerprinting parameters. Any run of at least Threshold() = W+K-1
// tokens that two texts share is guaranteed to give them a fingerprint in common.
type Params struct {
	K int // tokens per k-gram, the noise threshold: shorter shared runs are never seen
	W int // k-grams per winnowing window
}

// DefaultParams guarantee to find every shared run of 34 tokens. Measured over
// linux-6.1 and Go's own tree, 34 tokens span a median of 159 and 117 characters of
// code (whitespace included, comments excluded), about the 150 characters at which
// GitHub Copilot's duplication filter works; README.md gives the measurement.
var DefaultParams = Params{K: 16, W: 19}

// DefaultRenameParams are the rename-robust fingerprints' parameters: every shared
// run of 50 tokens is found. Seeing every identifier as one token makes unrelated
// code agree far more often, so the threshold is longer than DefaultParams'; the
// matcher's insistence on a consistent renaming does the rest (docs/EVAL.md).
var DefaultRenameParams = Params{K: 20, W: 31}

// Threshold returns t = W + K - 1, the length in tokens of the shortest shared run that
// is guaranteed to be found.
func (p Params) Threshold() int { return p.W + p.K - 1 }

// Density is the expected share of k-grams that winnowing keeps, 2/(W+1).
func (p Params) Density() float64 { return 2 / float64(p.W+1) }

// Validate reports whether p can fingerprint anything.
func (p Params) Validate() error {
	if p.K < 1 || p.W < 1 {
		return fmt.Errorf("fingerprint: k=%d, w=%d: both must be at least 1", p.K, p.W)
	}
	if p.K > 1000 || p.W > 1000 {
		return errors.New("fingerprint: k and w must be at most 1000")
	}
	return nil
}

func (p Params) String() string { return fmt.Sprintf("k=%d w=%d t=%d", p.K, p.W, p.Threshold()) }

// A Fingerprint is a k-gram hash kept by winnowing.
type Fingerprint struct {
	Hash uint64
	Pos  int32 // index of the k-gram's first token
}

// rollBase is the multiplier of the polynomial rolling hash; any odd constant with
// well-mixed bits will do.
const rollBase = 0x9e3779b97f4a7c15

// roller computes the hash of every k consecutive token hashes,
// sum(t[i+j] * B^(k-1-j)) mod 2^64, in O(1) per token.
type roller struct {
	k    int
	bk   uint64 // B^k
	h    uint64
	hist []uint64 // the last k token hashes, circular
	n    int      // token hashes seen
}

func newRoller(k int) roller {
	bk := uint64(1)
	for i := 0; i < k; i++ {
		bk *= rollBase
	}
	return roller{k: k, bk: bk, hist: make([]uint64, k)}
}

// push adds a token hash and reports the hash of the k-gram it completes.
func (r *roller) push(t uint64) (uint64, bool) {
	slot := r.n % r.k
	r.h = r.h*rollBase + t - r.hist[slot]*r.bk
	r.hist[slot] = t
	r.n++
	if r.n < r.k {
		return 0, false
	}
	return mix(r.h), true
}

// mix is the murmur3 finalizer: it spreads the rolling hash's bits so that the
// window minimum is a uniformly random choice.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// winnower keeps the minimum of every window of w consecutive k-gram hashes, robustly:
// on ties it keeps the k-gram it chose before while that is still in the window, and
// else takes the rightmost minimum (Schleimer, Wilkerson and Aiken, SIGMOD 2003).
type winnower struct {
	w    int
	ring []uint64 // hash of k-gram i at ring[i%w]
	n    int      // k-grams seen
	sel  int      // index of the chosen k-gram, -1 before the first full window
}

func newWinnower(w int) winnower {
	return winnower{w: w, ring: make([]uint64, w), sel: -1}
}

// push adds the hash of the next k-gram and reports the index of a newly chosen one.
func (wn *winnower) push(h uint64) (int, bool) {
	i := wn.n
	wn.ring[i%wn.w] = h
	wn.n++
	lo := i - wn.w + 1
	if lo < 0 {
		return 0, false
	}
	if wn.sel < lo {
		m := i
		for j := i - 1; j >= lo; j-- {
			if wn.ring[j%wn.w] < wn.ring[m%wn.w] {
				m = j
			}
		}
		wn.sel = m
		return m, true
	}
	if h < wn.ring[wn.sel%wn.w] {
		wn.sel = i
		return i, true
	}
	return 0, false
}

// A Winnower fingerprints a sequence of token hashes as they come: it hashes every
// k consecutive ones and winnows the k-gram hashes. The zero value is not usable.
type Winnower struct {
	p    Params
	roll roller
	win  winnower
}

// NewWinnower returns a winnower with parameters p, which must be valid.
func NewWinnower(p Params) *Winnower {
	return &Winnower{p: p, roll: newRoller(p.K), win: newWinnower(p.W)}
}

// Push adds the next token hash and returns the fingerprint it decides, if any.
func (w *Winnower) Push(h uint64) (Fingerprint, bool) {
	kh, ok := w.roll.push(h)
	if !ok {
		return Fingerprint{}, false
	}
	i, ok := w.win.push(kh)
	if !ok {
		return Fingerprint{}, false
	}
	// The chosen k-gram's hash is still in the window's ring.
	return Fingerprint{Hash: w.win.ring[i%w.p.W], Pos: int32(i)}, true
}

// identHash is what every identifier hashes to in rename-robust fingerprints.
var identHash = mix(0x1de47) // any constant no token text hashes to in practice

// RenameHash returns a token's hash for rename-robust fingerprints, which see code
// as MOSS does: every identifier is the same token, as if consistently renamed,
// while keywords, operators, numbers and string contents keep their hashes.
func RenameHash(t *Token) uint64 {
	if t.Kind == Ident {
		return identHash
	}
	return t.Hash
}
