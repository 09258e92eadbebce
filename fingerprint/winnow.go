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
	slot int      // where the next one goes
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
	r.h = r.h*rollBase + t - r.hist[r.slot]*r.bk
	r.hist[r.slot] = t
	if r.slot++; r.slot == r.k {
		r.slot = 0
	}
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
	head int      // n % w
	sel  int      // index of the chosen k-gram, -1 before the first full window
	min  uint64   // its hash
}

func newWinnower(w int) winnower {
	return winnower{w: w, ring: make([]uint64, w), sel: -1}
}

// push adds the hash of the next k-gram and reports the index of a newly chosen one.
func (wn *winnower) push(h uint64) (int, bool) {
	i := wn.n
	wn.ring[wn.head] = h
	wn.n++
	if wn.head++; wn.head == wn.w {
		wn.head = 0
	}
	lo := i - wn.w + 1
	if lo < 0 {
		return 0, false
	}
	if wn.sel < lo {
		// The choice left the window: the rightmost minimum of the window, which
		// is the whole ring, newest (i) first.
		m, mh := i, h
		slot := wn.head - 1 // i's slot
		if slot < 0 {
			slot = wn.w - 1
		}
		for j := i - 1; j >= lo; j-- {
			if slot--; slot < 0 {
				slot = wn.w - 1
			}
			if v := wn.ring[slot]; v < mh {
				m, mh = j, v
			}
		}
		wn.sel, wn.min = m, mh
		return m, true
	}
	if h < wn.min {
		wn.sel, wn.min = i, h
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
	return Fingerprint{Hash: w.win.min, Pos: int32(i)}, true
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

// pushTokens pushes the hashes of toks (rename-robust ones with rename) and appends
// the fingerprints they decide to out, and, when kgrams is not nil, every k-gram's
// hash to it. It is Push in a loop, with the roller and the winnower kept in
// registers: the indexer's hot path.
func (w *Winnower) pushTokens(toks []Token, rename bool, out []Fingerprint, kgrams *[]uint64) []Fingerprint {
	r, wn := &w.roll, &w.win
	k, ww := r.k, wn.w
	h, slot, n := r.h, r.slot, r.n
	hist, ring := r.hist, wn.ring
	for i := range toks {
		t := toks[i].Hash
		if rename && toks[i].Kind == Ident {
			t = identHash
		}
		h = h*rollBase + t - hist[slot]*r.bk
		hist[slot] = t
		if slot++; slot == k {
			slot = 0
		}
		if n++; n < k {
			continue
		}
		// A k-gram is complete: winnow it, as winnower.push does.
		kh := mix(h)
		if kgrams != nil {
			*kgrams = append(*kgrams, kh)
		}
		j := wn.n
		ring[wn.head] = kh
		wn.n++
		if wn.head++; wn.head == ww {
			wn.head = 0
		}
		lo := j - ww + 1
		if lo < 0 {
			continue
		}
		if wn.sel < lo {
			m, mh := j, kh
			s := wn.head - 1
			if s < 0 {
				s = ww - 1
			}
			for q := j - 1; q >= lo; q-- {
				if s--; s < 0 {
					s = ww - 1
				}
				if v := ring[s]; v < mh {
					m, mh = q, v
				}
			}
			wn.sel, wn.min = m, mh
			out = append(out, Fingerprint{Hash: mh, Pos: int32(m)})
		} else if kh < wn.min {
			wn.sel, wn.min = j, kh
			out = append(out, Fingerprint{Hash: kh, Pos: int32(j)})
		}
	}
	r.h, r.slot, r.n = h, slot, n
	return out
}
