package fingerprint

// A Stream fingerprints a text that arrives in pieces. Whatever the pieces, even
// split inside a token, a comment or a multi-byte character, it yields exactly the
// tokens and fingerprints that the whole text yields, each as soon as the bytes seen
// determine it: a token once the byte after it arrives, a fingerprint once the last
// k-gram of its window is complete.
//
// Tokens and Fingerprints only grow; callers may read them between writes. A Stream
// is not safe for concurrent use.
type Stream struct {
	Tokens       []Token
	Fingerprints []Fingerprint
	// Renamed holds the rename-robust fingerprints (see RenameHash), when
	// EnableRename asked for them.
	Renamed []Fingerprint
	// KGrams holds the hash of every k-gram (KGrams[i] of tokens [i, i+K)), when
	// CollectKGrams asked for them: what a filter of all an index's k-grams holds.
	KGrams []uint64
	kgrams bool

	params Params
	tz     tokenizer
	hashed int // tokens fed to the winnowers
	exact  *Winnower
	rename *Winnower
	closed bool
}

// NewStream returns a stream that tokenizes text in language l with parameters p,
// which must be valid. Markdown text is prose with fenced code blocks, each tokenized
// in its fence's language (C-family rules when the fence names none).
func NewStream(p Params, l Lang) *Stream {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	s := &Stream{params: p, exact: NewWinnower(p)}
	s.tz.init(l, &s.Tokens)
	return s
}

// CollectKGrams makes the stream keep the hash of every k-gram in KGrams. Call it
// before the first Write; Reset keeps it.
func (s *Stream) CollectKGrams() { s.kgrams = true }

// EnableRename makes the stream compute rename-robust fingerprints with parameters
// p too, in Renamed. Call it before the first Write.
func (s *Stream) EnableRename(p Params) {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	s.rename = NewWinnower(p)
}

// Reset makes s ready for a new text in language l, keeping its buffers: the
// previous Tokens and Fingerprints are overwritten.
func (s *Stream) Reset(l Lang) {
	toks, fps, ren, kg := s.Tokens[:0], s.Fingerprints[:0], s.Renamed[:0], s.KGrams[:0]
	p, r, collect := s.params, s.rename, s.kgrams
	*s = Stream{Tokens: toks, Fingerprints: fps, Renamed: ren, KGrams: kg, kgrams: collect, params: p, exact: NewWinnower(p)}
	if r != nil {
		s.rename = NewWinnower(r.p)
	}
	s.tz.init(l, &s.Tokens)
}

// Params returns the stream's parameters.
func (s *Stream) Params() Params { return s.params }

// Write adds the next piece of the text. It never fails.
func (s *Stream) Write(p []byte) (int, error) {
	if s.closed {
		panic("fingerprint: Write after Close")
	}
	s.tz.feed(p, false)
	s.hash()
	return len(p), nil
}

// Close ends the text, which finishes its last token.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.tz.feed(nil, true)
	s.hash()
	return nil
}

// Discard drops the tokens, fingerprints and k-grams produced so far, keeping
// the tokenizer's and winnowers' state: the text goes on as if they were still
// there, and positions stay counted from its start (Fingerprint.Pos is then no
// longer an index into Tokens). A caller that consumes them after every Write
// fingerprints a text of any length in memory bounded by the window and the
// piece, not by the text.
func (s *Stream) Discard() {
	s.Tokens, s.Fingerprints, s.Renamed, s.KGrams = s.Tokens[:0], s.Fingerprints[:0], s.Renamed[:0], s.KGrams[:0]
	s.hashed = 0
}

// Pending returns the offset of the first byte whose token is not yet known: bytes
// before it are either in Tokens or are whitespace and comments.
func (s *Stream) Pending() int { return s.tz.lx.pending() }

func (s *Stream) hash() {
	toks := s.Tokens[s.hashed:]
	var kg *[]uint64
	if s.kgrams {
		kg = &s.KGrams
	}
	s.Fingerprints = s.exact.pushTokens(toks, false, s.Fingerprints, kg)
	if s.rename != nil {
		s.Renamed = s.rename.pushTokens(toks, true, s.Renamed, nil)
	}
	s.hashed = len(s.Tokens)
}

// Fingerprints tokenizes a whole text and returns its tokens and fingerprints.
func Fingerprints(p Params, l Lang, text []byte) ([]Token, []Fingerprint) {
	s := NewStream(p, l)
	s.Tokens = make([]Token, 0, len(text)/5+16) // code averages 4-7 bytes a token
	s.Write(text)
	s.Close()
	return s.Tokens, s.Fingerprints
}

// Tokenize returns the tokens of a whole text.
func Tokenize(l Lang, text []byte) []Token {
	var toks []Token
	var tz tokenizer
	tz.init(l, &toks)
	tz.feed(text, true)
	return toks
}

// tokenizer is a lexer, behind a markdown splitter for Markdown.
type tokenizer struct {
	lx lexer
	md *markdown // nil unless the language is Markdown
}

func (t *tokenizer) init(l Lang, out *[]Token) {
	t.lx.out = out
	if l == Markdown {
		t.md = newMarkdown(&t.lx, C)
		return
	}
	t.lx.reset(l, 0, 1)
}

func (t *tokenizer) feed(p []byte, atEOF bool) {
	if t.md != nil {
		t.md.feed(p, atEOF)
		return
	}
	t.lx.feed(p, atEOF)
}
