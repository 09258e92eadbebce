package proxy

import (
	"context"
	"slices"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/index"
)

// A filter holds what one response's filtering knows: the request, the index it
// checks against, and every choice's texts.
type filter struct {
	s       *Server
	ctx     context.Context // the request's: lookups in a remote index end with it
	ix      index.Store
	req     *request
	rid     string
	echo    echoSet
	hold    bool // some match may be blocked: hold text back until it is checked
	choices map[int]*choice
	// blockedChoices counts the choices cut so far.
	blockedChoices int
	scan           time.Duration // time spent reading output, fingerprinting it and looking it up
	// upstreamErr is the kind of upstream failure the response showed, if any: an
	// error object in place of a completion ("status"), or a stream that broke off
	// ("stream").
	upstreamErr string
	// storeErr is the index's failure to answer a lookup: the text after the last
	// answered one is unchecked. indexFailed acts on it once.
	storeErr     error
	storeErrSeen bool
}

// tokens returns how many tokens of output the filter has scanned.
func (f *filter) tokens() int {
	n := 0
	for _, c := range f.choices {
		for _, t := range c.texts {
			det := t.detector()
			n += len(det.fp.Tokens) - max(0, det.ctxToks)
		}
	}
	return n
}

// A choice is one of the n answers of a response.
type choice struct {
	index    int
	content  *text
	tools    map[int]*text // tool call arguments, by the tool call's index
	texts    []*text       // all of the above, in order of appearance
	finished bool          // its finish_reason has arrived
	blocked  *blocked      // where it is cut, if it is
	cited    []citation    // matches to cite
	final    bool          // its last chunk has gone out
}

// indexFailed reports, once, that the index failed to answer a lookup, and counts
// it. In fail-open mode nothing is held back any more: the rest of the response
// passes unchecked.
func (f *filter) indexFailed() bool {
	if f.storeErr == nil || f.storeErrSeen {
		return false
	}
	f.storeErrSeen = true
	f.s.metrics.storeErrors.WithLabelValues("lookup").Inc()
	f.s.log.Warn("index lookup failed", "request_id", f.rid, "err", f.storeErr, "fail_open", f.s.opts.FailOpen)
	if f.s.opts.FailOpen {
		f.hold = false
	}
	return true
}

// blocked says where a blocked choice is cut: in text t, at byte cut of it. limits
// gives, for each of its texts, how many bytes the client may still get: texts
// before t in full (if clean), t up to the cut (none of it for a tool call: a call
// cut short is one no client should run), texts after t not at all.
type blocked struct {
	t      *text
	cut    int
	limits map[*text]int
}

// keep returns how many bytes of the piece of text p carries may go out.
func (b *blocked) keep(p part) int { return max(0, min(p.end, b.limits[p.t])-p.start) }

// A text is one stream of a choice: the content, one tool call's input, the
// reasoning. Its bytes are what the wire format carries; dec, if set, turns them
// into what the detector sees (the strings of a JSON text, the lines of a patch).
type text struct {
	det     *detector // read it through detector(), which gives it the pending text
	dec     decoder
	tool    bool   // a tool call's input: it goes out whole once checked whole, or not at all
	n       int    // bytes so far, as carried
	pending []byte // text added since the detector last saw it
}

// A decoder turns a text as it is carried into the text the detector reads, in
// pieces, and maps offsets of the read text back.
type decoder interface {
	feed(p []byte) []byte
	rawOffset(d int) int
}

// A textKind says how a text is read.
type textKind uint8

const (
	// kindContent is the answer: read in the request's language, behind the
	// prompt's last lines.
	kindContent textKind = iota
	// kindArgs is a tool call's arguments: a JSON text whose strings are read as code.
	kindArgs
	// kindInput is a custom tool call's freeform input, such as a patch: read as
	// code, its lines' diff markers dropped.
	kindInput
	// kindProse is reasoning the client is shown: read as markdown, alone.
	kindProse
)

// detector returns t's detector, having given it the text added since.
func (t *text) detector() *detector {
	if len(t.pending) > 0 {
		t.det.write(t.pending)
		t.pending = t.pending[:0] // the tokenizer copies what it keeps
	}
	return t.det
}

func newFilter(ctx context.Context, s *Server, ix index.Store, req *request, rid string) *filter {
	f := &filter{s: s, ctx: ctx, ix: ix, req: req, rid: rid, choices: map[int]*choice{}, hold: s.policy.MayBlock()}
	start := time.Now()
	f.echo = newEchoSet(req.lang, req.sent...)
	f.scan += time.Since(start)
	return f
}

func (f *filter) choice(i int) *choice {
	c := f.choices[i]
	if c == nil {
		c = &choice{index: i, tools: map[int]*text{}}
		f.choices[i] = c
	}
	return c
}

// newText adds a text of kind k to choice c.
func (f *filter) newText(c *choice, k textKind) *text {
	context := ""
	if k == kindContent {
		context = f.req.context
	}
	return f.newTextBehind(c, k, context)
}

// newTextBehind adds a text of kind k to choice c that is read behind context:
// a run that context begins and the text goes on with is found whole.
func (f *filter) newTextBehind(c *choice, k textKind, context string) *text {
	t := &text{}
	lang := fingerprint.C
	switch k {
	case kindContent:
		lang = f.req.lang
	case kindArgs:
		t.dec, t.tool = &jsonStrings{}, true
	case kindInput:
		t.dec, t.tool = &patchLines{}, true
	case kindProse:
		lang = fingerprint.Markdown
	}
	t.det = newDetector(f.ctx, f.ix, lang, context, f.echo, f.s.opts.Match, f.hold, f.s.opts.Rename, &f.storeErr)
	c.texts = append(c.texts, t)
	return t
}

// contentText returns the choice's content text, which sees the prompt's last
// lines as its context.
func (f *filter) contentText(c *choice) *text {
	if c.content == nil {
		c.content = f.newText(c, kindContent)
	}
	return c.content
}

// toolText returns the text of the arguments of tool call j.
func (f *filter) toolText(c *choice, j int) *text {
	t := c.tools[j]
	if t == nil {
		t = f.newText(c, kindArgs)
		c.tools[j] = t
	}
	return t
}

// end closes t: its last tokens are now known. A new text of a choice ends
// the ones before it (a model writes one after another).
func (t *text) end() { t.detector().close() }

// add adds a piece of a text and returns the range of bytes it occupies. The
// detector sees it when next asked: a stream's events come in bursts, and one
// write for a burst costs less than one for each event.
func (f *filter) add(t *text, s string) (start, end int) {
	start = t.n
	t.n += len(s)
	if t.dec != nil {
		t.pending = append(t.pending, t.dec.feed([]byte(s))...)
	} else {
		t.pending = append(t.pending, s...)
	}
	return start, t.n
}

// finish closes a choice's texts: their last tokens are now known.
func (f *filter) finish(c *choice) {
	if c.finished {
		return
	}
	c.finished = true
	for _, t := range c.texts {
		t.detector().close()
	}
}

// safe returns how many bytes of t may go to the client.
func (t *text) safe() int {
	det := t.detector()
	d := det.safe()
	if t.dec != nil {
		if d >= det.out {
			return t.n
		}
		return t.dec.rawOffset(d)
	}
	return d
}

// rawOffset converts an offset of the text the detector saw to one of t.
func (t *text) rawOffset(d int) int {
	if t.dec != nil {
		return t.dec.rawOffset(d)
	}
	return d
}

// judged is a match with the action the policy takes on it.
type judged struct {
	hit    hit
	match  *index.DocInfo
	action Action
}

// decide looks for a match in c that the policy blocks and, finding one, cuts c
// before it.
func (f *filter) decide(c *choice) {
	if c.blocked != nil || !f.hold {
		return
	}
	for i, t := range c.texts {
		cut, ok := f.blockCut(t)
		if !ok {
			continue
		}
		b := &blocked{t: t, cut: cut, limits: map[*text]int{}}
		if !t.tool {
			b.limits[t] = cut
		}
		// The texts before t are complete (a model writes its content, then its
		// tool calls one after another): check them to their end.
		for _, u := range c.texts[:i] {
			u.detector().close()
			b.limits[u] = u.n
			if cut, ok := f.blockCut(u); ok {
				b.limits[u] = cut
				if u.tool {
					b.limits[u] = 0
				}
			}
		}
		c.blocked = b
		f.blockedChoices++
		return
	}
}

// blockCut returns where t must be cut: before the first new token of the earliest
// match that the policy blocks. A stretch the index holds under several licenses
// gets the least strict action among them: the user may take the code under any of
// them (or it is the company's own, allowlisted).
func (f *filter) blockCut(t *text) (int, bool) {
	var js []judged
	det := t.detector()
	for _, h := range det.hits() {
		d := det.m.Doc(h.run.Doc)
		js = append(js, judged{h, &d, f.s.policy.Action(d.Repo.Name, d.Path, d.License)})
	}
	best := -1
	for i, j := range js {
		if j.action != Block || covered(j, js) {
			continue
		}
		if best < 0 || j.hit.cut < js[best].hit.cut {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	return t.rawOffset(js[best].hit.cut), true
}

// covered reports whether a run that a laxer action allows covers j's new output.
func covered(j judged, all []judged) bool {
	from, to := j.hit.tok, min(j.hit.run.End, j.hit.tok+1)
	for _, o := range all {
		if o.action < j.action && o.hit.run.Start <= from && o.hit.run.End >= to {
			return true
		}
	}
	return false
}

// citations returns the matches of a choice, strictest action first, the longest
// first within an action; those the policy allows are there too (they are counted,
// not shown).
func (f *filter) citations(c *choice) []citation {
	var out []citation
	for _, t := range c.texts {
		out = append(out, f.textCitations(t)...)
	}
	slices.SortStableFunc(out, func(a, b citation) int { return b.rank() - a.rank() })
	return out
}

// textCitations returns the matches of one text as citations, in the order found.
func (f *filter) textCitations(t *text) []citation {
	var out []citation
	det := t.detector()
	for _, m := range det.matches() {
		ct := newCitation(&m, det.outputTokens(), f.s.policy.Action(m.Source.Repo.Name, m.Source.Path, m.Source.License))
		ct.text = t
		ct.start, ct.end = max(0, m.Query.StartOff-det.ctxLen), max(0, m.Query.EndOff-det.ctxLen)
		out = append(out, ct)
	}
	return out
}
