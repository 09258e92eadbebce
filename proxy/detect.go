package proxy

import (
	"context"

	"cleanroom/fingerprint"
	"cleanroom/index"
)

// echoK is the length, in tokens, of the stretches by which output is recognised as
// repeating the request: an output token inside a stretch of echoK tokens that the
// request holds is the user's own text, not new copying.
const echoK = 8

// echoSet holds the hashes of every echoK consecutive tokens of a request's text.
type echoSet map[uint64]struct{}

// kgramHash hashes echoK token hashes (a polynomial, like the fingerprints' roll).
func kgramHash(toks []fingerprint.Token) uint64 {
	var h uint64
	for _, t := range toks {
		h = h*0x9e3779b97f4a7c15 + t.Hash
	}
	return h
}

// maxEchoText bounds the request text an echo set is built from to its last 512
// KiB: more than a model's context holds, and a bound on what one request costs
// (tokenizing and hashing a 16 MiB request would take seconds).
const maxEchoText = 512 << 10

func newEchoSet(l fingerprint.Lang, texts ...string) echoSet {
	s := echoSet{}
	budget := maxEchoText
	for i := len(texts) - 1; i >= 0 && budget > 0; i-- {
		if len(texts[i]) > budget {
			texts = append([]string(nil), texts...)
			texts[i] = texts[i][len(texts[i])-budget:]
		}
		budget -= len(texts[i])
		if budget <= 0 {
			texts = texts[i:]
		}
	}
	for _, text := range texts {
		toks := fingerprint.Tokenize(l, []byte(text))
		for i := 0; i+echoK <= len(toks); i++ {
			s[kgramHash(toks[i:i+echoK])] = struct{}{}
		}
	}
	return s
}

// A detector watches one text of one choice, the assistant's content or the
// arguments of one tool call, as it streams. It fingerprints the text behind the
// request's last lines (the context), so that output which completes a copyleft run
// the prompt began is caught, and looks the fingerprints up as they are decided.
type detector struct {
	ix      index.Store
	t       int // the guarantee threshold
	fp      *fingerprint.Stream
	m       *index.Matcher
	ctxLen  int // bytes of context before the output in fp's text
	ctxToks int // tokens of the context; -1 until the output's first byte is fed
	out     int // output bytes fed
	echo    echoSet
	isEcho  []bool // per token
	closed  bool
	// absent is the first token of the last k-gram the index certainly lacks (its
	// k-gram filter says so), -1 if none: no run that goes on from here can hold
	// it, so the text before it is safe whatever comes.
	absent int
	kgrams int // k-grams checked against the filter
	// err is the index's failure to answer a lookup, shared by the filter's
	// detectors (the first one wins). The detector then takes no more text, and
	// safe stays where the last answered lookup left it.
	err    *error
	frozen int
	// rm matches rename-robustly (--rename): code copied with its identifiers
	// renamed consistently, in runs of rt tokens or more. Nil without --rename.
	rm *index.Matcher
	rt int
}

// With hold, text is held back until checked, and the index's k-gram filter (if it
// has one) lets less of it wait; without, nothing waits and the filter is not used.
// With rename (and an index with rename-robust fingerprints) renamed copies are
// matched too, and held back for: their runs are longer, and the k-gram filter,
// which knows exact k-grams, says nothing of them.
func newDetector(ctx context.Context, ix index.Store, l fingerprint.Lang, context string, echo echoSet, mo index.MatchOptions, hold, rename bool, err *error) *detector {
	// A policy may demand longer matches than the guarantee: then they are what is
	// held back for.
	t := max(ix.Params().Threshold(), mo.MinTokens)
	mo.MinTokens = t
	d := &detector{ix: ix, t: t, fp: fingerprint.NewStream(ix.Params(), l),
		m: ix.NewMatcher(mo), echo: echo, ctxToks: -1, absent: -1, err: err, frozen: -1}
	d.m.SetContext(ctx)
	rp, hasRename := ix.RenameParams()
	if rename && hasRename {
		d.fp.EnableRename(rp)
		rmo := mo
		rmo.Rename, rmo.MinTokens = true, max(rp.Threshold(), mo.MinTokens)
		d.rm, d.rt = ix.NewMatcher(rmo), rmo.MinTokens
		d.rm.SetContext(ctx)
	}
	if hold && ix.HasKGramFilter() && d.rm == nil {
		d.fp.CollectKGrams()
	}
	if context != "" {
		d.fp.Write([]byte(context))
		d.fp.Write([]byte{'\n'})
		d.ctxLen = len(context) + 1
	}
	return d
}

// write adds output text.
func (d *detector) write(p []byte) {
	if len(p) == 0 {
		return
	}
	if d.ctxToks < 0 {
		// The context's last token ends at the newline written after it.
		d.ctxToks = len(d.fp.Tokens)
	}
	if d.frozen >= 0 {
		return
	}
	safe := d.safe()
	d.fp.Write(p)
	d.out += len(p)
	d.update()
	d.failed(safe)
}

// failed notes a failed lookup: what was safe before it stays all that is.
func (d *detector) failed(safe int) {
	err := d.m.Err()
	if d.rm != nil && err == nil {
		err = d.rm.Err()
	}
	if err != nil && d.frozen < 0 {
		d.frozen = safe
		if *d.err == nil {
			*d.err = err
		}
	}
}

// close ends the output.
func (d *detector) close() {
	if d.closed {
		return
	}
	if d.ctxToks < 0 {
		d.ctxToks = len(d.fp.Tokens)
	}
	if d.frozen >= 0 {
		d.closed = true
		return
	}
	safe := d.safe()
	d.closed = true
	d.fp.Close()
	d.update()
	d.failed(safe)
}

func (d *detector) update() {
	d.m.Update(d.fp.Tokens, d.fp.Fingerprints)
	if d.rm != nil {
		d.rm.Update(d.fp.Tokens, d.fp.Renamed)
	}
	// The k-grams are checked once, as they come, and not kept.
	for i, h := range d.fp.KGrams {
		if !d.ix.MayHaveKGram(h) {
			d.absent = d.kgrams + i
		}
	}
	d.kgrams += len(d.fp.KGrams)
	d.fp.KGrams = d.fp.KGrams[:0]
	toks := d.fp.Tokens
	for i := len(d.isEcho); i < len(toks); i++ {
		d.isEcho = append(d.isEcho, i < d.ctxToks)
		// Mark the stretch of echoK tokens that ends here if the request holds it.
		if i+1 >= echoK {
			if _, ok := d.echo[kgramHash(toks[i+1-echoK:i+1])]; ok {
				for j := i + 1 - echoK; j <= i; j++ {
					d.isEcho[j] = true
				}
			}
		}
	}
}

// decided returns how many tokens have a settled echo status: a token's status is
// known once every stretch of echoK tokens that contains it is.
func (d *detector) decided() int {
	if d.closed {
		return len(d.fp.Tokens)
	}
	return max(0, len(d.fp.Tokens)-(echoK-1))
}

// safe returns how many bytes of output can no longer become part of a run that is
// not found yet. A run reaching the threshold t is found as soon as its t-th token
// is known, so only the last t-1 known tokens, and the bytes not yet tokenized, may
// still begin one. With the index's k-gram filter the bound is tighter: a run that
// goes on past the newest token holds every k-gram from its start to there, so it
// cannot start at or before a k-gram the corpus lacks; on text that copies nothing
// the newest k-gram is absent, and the client trails the model by about k tokens.
// A run the evidence rules set aside (a table, a list of numbers) is held back
// for as long as it grows, since it may yet come to count.
func (d *detector) safe() int {
	if d.frozen >= 0 {
		return d.frozen
	}
	if d.closed {
		return d.out
	}
	toks := d.fp.Tokens
	end := d.fp.Pending()
	b := max(0, len(toks)-(d.t-1), d.absent+1)
	// A run of t tokens or more that the evidence rules do not count yet may come
	// to count as it grows: while it reaches the newest token, no more than t-1 of
	// its tokens go out.
	for _, r := range d.m.Unproven(d.t) {
		if r.End >= len(toks) {
			b = min(b, r.Start+d.t-1)
		}
	}
	if d.rm != nil {
		b = min(b, max(0, len(toks)-(d.rt-1)))
		for _, r := range d.rm.Unproven(d.rt) {
			if r.End >= len(toks) {
				b = min(b, r.Start+d.rt-1)
			}
		}
	}
	if b < len(toks) {
		end = min(end, int(toks[b].Off))
	}
	return min(max(0, end-d.ctxLen), d.out)
}

// A hit is a run of at least t tokens that makes new copying: it includes output
// that does not merely repeat the request.
type hit struct {
	run index.Run
	tok int // its first new output token
	cut int // that token's output byte offset
}

// hits returns the runs found so far that count: at least t tokens, the context's
// included, with at least one output token whose echo status is settled and that
// is not an echo of the request.
func (d *detector) hits() []hit {
	var out []hit
	if d.ctxToks < 0 {
		return nil
	}
	dec := d.decided()
	runs := d.m.Runs(d.t)
	if d.rm != nil {
		runs = append(runs, d.rm.Runs(d.rt)...)
	}
	for _, r := range runs {
		for j := max(r.Start, d.ctxToks); j < min(r.End, dec); j++ {
			if !d.isEcho[j] {
				out = append(out, hit{run: r, tok: j, cut: int(d.fp.Tokens[j].Off) - d.ctxLen})
				break
			}
		}
	}
	return out
}

// outputTokens returns how many tokens of output the detector has seen.
func (d *detector) outputTokens() int { return len(d.fp.Tokens) - max(0, d.ctxToks) }

// matches returns the matches, merged as index.Matcher.Matches merges them, that
// include new output.
func (d *detector) matches() []index.Match {
	var out []index.Match
	hits := d.hits()
	ms := d.m.Matches()
	if d.rm != nil {
		ms = append(ms, d.rm.Matches()...)
	}
	for _, m := range ms {
		for _, h := range hits {
			if h.run.Doc == m.Doc && h.run.Start < m.Query.End && h.run.End > m.Query.Start {
				out = append(out, m)
				break
			}
		}
	}
	return out
}
