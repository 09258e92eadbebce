package fingerprint

import (
	"bytes"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Kind is the lexical class of a token.
type Kind uint8

// Token kinds. Whitespace and comments produce no tokens.
const (
	Ident Kind = iota + 1
	Keyword
	Number
	String // a word inside a string literal
	Punct
)

func (k Kind) String() string {
	switch k {
	case Ident:
		return "ident"
	case Keyword:
		return "keyword"
	case Number:
		return "number"
	case String:
		return "string"
	case Punct:
		return "punct"
	}
	return "invalid"
}

// A Token is one lexical token of a text.
type Token struct {
	Hash uint64 // xxhash64 of the token's text
	Off  int32  // byte offset of the token's first byte in the text (texts stay under 2 GiB)
	End  int32  // byte offset just past its last byte
	Line int32  // 1-based line of its first byte
	Kind Kind
	// InLit is set for the tokens inside a string literal (not its quotes).
	InLit bool
}

// maxInline is how much of a token the lexer keeps as text; longer tokens (string
// literals, mostly) are hashed as they stream and cannot be keywords.
const maxInline = 256

// byte classes, per language.
const (
	cWhite   = 1 << iota
	cIdent   // continues an identifier
	cStart   // starts an identifier
	cDigit   // starts a number
	cQuote   // opens a string literal
	cComment // may open a comment
)

type lexMode uint8

const (
	mNormal lexMode = iota
	mIdent
	mNumber
	mString
	mLineComment
	mBlockComment
)

// lexer is a resumable tokenizer. It consumes bytes as they arrive and never looks
// further ahead than the few bytes that decide between, say, "/" and "/*"; a long
// token or comment is consumed as it streams and kept as state, so feeding a text in
// pieces costs the same as feeding it whole and yields the same tokens.
type lexer struct {
	r        *rules
	class    *[256]uint8
	keywords *tokenSet
	out      *[]Token // where tokens are appended

	pend []byte // undecided bytes (at most a few); pend[0] is at offset off
	off  int    // absolute offset of the next unconsumed byte
	line int32  // line of the next unconsumed byte
	prev byte   // the last consumed byte, '\n' at the start

	mode    lexMode
	tok     Token  // the token in progress (Off, Line, Kind)
	text    []byte // its bytes so far, up to maxInline
	dig     xxhash.Digest
	digUsed bool

	// string literal state
	quote  byte
	triple bool
	multi  bool
	raw    bool
	esc    bool    // the previous byte was an escaping backslash
	after  lexMode // the mode to return to after a token: mString inside a literal
	depth  int     // block comment nesting depth
}

var classTables [numLangs][256]uint8

func init() {
	for i, r := range langRules {
		t := &classTables[i]
		for c := 0; c < 256; c++ {
			b := byte(c)
			switch {
			case b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f' || b < 0x20 || b == 0x7f:
				t[c] = cWhite
			case b >= '0' && b <= '9':
				t[c] = cIdent | cDigit
			case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '_', b >= 0x80:
				t[c] = cIdent | cStart
			}
		}
		for _, b := range []byte(r.identExtra) {
			t[b] |= cIdent
		}
		for _, b := range []byte(r.identStart) {
			t[b] |= cStart
		}
		for _, b := range []byte(r.quotes) {
			t[b] |= cQuote
		}
		for _, s := range r.lineComments {
			t[s[0]] |= cComment
		}
		if r.blockOpen != "" {
			t[r.blockOpen[0]] |= cComment
		}
	}
}

func (lx *lexer) reset(l Lang, off int, line int32) {
	if l >= numLangs {
		l = Text
	}
	*lx = lexer{r: langRules[l], class: &classTables[l], keywords: &keywordSets[l], out: lx.out, text: lx.text[:0],
		pend: lx.pend[:0], off: off, line: line, prev: '\n'}
}

// feed tokenizes p, which follows everything fed before. With atEOF it also ends the
// text: a token in progress is finished, an unterminated string or comment is closed.
// New tokens are appended to lx.out.
func (lx *lexer) feed(p []byte, atEOF bool) {
	if len(lx.pend) > 0 {
		// Few bytes are ever pending; join them with enough of p to decide.
		n := len(p)
		if n > 16 {
			n = 16
		}
		lx.pend = append(lx.pend, p[:n]...)
		buf := lx.pend
		used := lx.scan(buf, atEOF && n == len(p))
		consumedOfP := used - (len(buf) - n)
		if consumedOfP < 0 {
			// Still undecided even with the new bytes (only possible when p was short).
			lx.pend = append(lx.pend[:0], buf[used:]...)
			return
		}
		lx.pend = lx.pend[:0]
		p = p[consumedOfP:]
	}
	used := lx.scan(p, atEOF)
	lx.pend = append(lx.pend, p[used:]...)
	if atEOF {
		lx.finish()
	}
}

// scan consumes a prefix of buf (whose first byte is at lx.off) and returns its length.
// It stops early only where the next bytes are needed to decide what buf's tail is.
func (lx *lexer) scan(buf []byte, atEOF bool) int {
	i := 0
	for i < len(buf) {
		if lx.mode == mNormal {
			// The fast path for the bytes most code is made of: whitespace,
			// one-byte operators and words, handled here without a call. It does
			// what scanNormal and scanWord do for them.
			if i = lx.fast(buf, i, atEOF); i == len(buf) {
				break
			}
		}
		var n int
		mode := lx.mode // of the bytes this step consumes, mostly
		switch mode {
		case mNormal:
			n = lx.scanNormal(buf[i:], atEOF)
		case mIdent, mNumber:
			n = lx.scanWord(buf[i:], atEOF)
		case mString:
			n = lx.scanString(buf[i:], atEOF)
		case mLineComment:
			n = lx.scanLineComment(buf[i:])
		case mBlockComment:
			n = lx.scanBlockComment(buf[i:], atEOF)
		}
		if n == 0 {
			if lx.mode == mode {
				break // undecided: more bytes are needed
			}
			continue
		}
		b := buf[i : i+n]
		lx.off += n
		lx.prev = b[n-1]
		// A step consumes one token, whitespace run or piece of a comment or
		// literal. Words hold no newline (but a Lisp symbol may escape one), nor
		// does a one-byte token other than a newline; everything else is counted.
		switch {
		case n == 1:
			if b[0] == '\n' {
				lx.line++
			}
		case (mode == mNormal || mode == mIdent || mode == mNumber) && lx.class[b[0]]&(cStart|cDigit) != 0 && !lx.r.identEsc:
		default:
			lx.line += int32(bytes.Count(b, newline))
		}
		i += n
	}
	return i
}

// fast consumes, from buf[i], runs of whitespace, one-byte operators and whole
// words (ones the buffer holds to their end), as many as come, and returns where
// it stopped: at anything else, left to the general path. The tokens, offset and
// line stay in locals meanwhile.
func (lx *lexer) fast(buf []byte, i int, atEOF bool) int {
	cl := lx.class
	out, off, line, prev := *lx.out, lx.off, lx.line, lx.prev
	esc := lx.r.identEsc
loop:
	for i < len(buf) {
		c := buf[i]
		switch k := cl[c]; {
		case k&cWhite != 0:
			j := i
			for ; j < len(buf) && cl[buf[j]]&cWhite != 0; j++ {
				if buf[j] == '\n' {
					line++
				}
			}
			off += j - i
			prev = buf[j-1]
			i = j
		case k == 0:
			// Not whitespace, a comment or literal opener, nor a word: an operator.
			out = append(out, Token{Hash: punctHashes[c], Off: int32(off), End: int32(off + 1), Line: line, Kind: Punct})
			off++
			prev = c
			i++
		case k&cStart != 0 && k&(cComment|cQuote) == 0 && !esc:
			j := i + 1
			for j < len(buf) && cl[buf[j]]&cIdent != 0 {
				j++
			}
			if j == len(buf) && !atEOF {
				break loop // the word may go on: the general path keeps it
			}
			w := buf[i:j]
			h := xxhash.Sum64(w)
			kind := Ident
			if len(w) <= maxKeyword && lx.keywords.has(h) {
				kind = Keyword
			}
			out = append(out, Token{Hash: h, Off: int32(off), End: int32(off + len(w)), Line: line, Kind: kind})
			off += len(w)
			prev = buf[j-1]
			i = j
		default:
			break loop
		}
	}
	*lx.out, lx.off, lx.line, lx.prev = out, off, line, prev
	return i
}

// advance accounts for consumed bytes.
func (lx *lexer) advance(b []byte) {
	lx.off += len(b)
	lx.line += int32(bytes.Count(b, newline))
	lx.prev = b[len(b)-1]
}

var newline = []byte{'\n'}

// hasPrefix reports whether buf starts with s.
func hasPrefix(buf []byte, s string) bool {
	return len(buf) >= len(s) && string(buf[:len(s)]) == s
}

// need reports whether buf, a prefix of what may follow, is too short to tell whether
// it starts with s: it is a proper prefix of s and more bytes may come.
func need(buf []byte, s string, atEOF bool) bool {
	return !atEOF && len(buf) < len(s) && string(buf) == s[:len(buf)]
}

func (lx *lexer) scanNormal(buf []byte, atEOF bool) int {
	c := buf[0]
	cl := lx.class[c]
	switch {
	case cl&cWhite != 0:
		n := 1
		for n < len(buf) && lx.class[buf[n]]&cWhite != 0 {
			n++
		}
		return n
	case cl&cComment != 0:
		if n, ok := lx.comment(buf, atEOF); ok {
			return n
		} else if n < 0 {
			return 0 // need more bytes to decide
		}
	}
	switch {
	case cl&cQuote != 0:
		return lx.openString(buf, atEOF)
	case cl&cStart != 0:
		lx.begin(Ident)
		lx.mode = mIdent
		return lx.scanWord(buf, atEOF)
	case cl&cDigit != 0:
		lx.begin(Number)
		lx.mode = mNumber
		return lx.scanWord(buf, atEOF)
	}
	lx.emitPunct(c)
	return 1
}

// punctHashes holds the hash of every one-byte token.
var punctHashes = func() (h [256]uint64) {
	for i := range h {
		h[i] = xxhash.Sum64([]byte{byte(i)})
	}
	return
}()

// emitPunct emits the one-byte token c at the next offset.
func (lx *lexer) emitPunct(c byte) {
	*lx.out = append(*lx.out, Token{Hash: punctHashes[c], Off: int32(lx.off), End: int32(lx.off + 1), Line: lx.line,
		Kind: Punct, InLit: lx.after == mString})
	lx.mode = lx.after
}

// comment reports whether buf starts a comment and, if so, enters comment mode and
// returns the length of the opener. n < 0 means more bytes are needed to decide.
func (lx *lexer) comment(buf []byte, atEOF bool) (n int, ok bool) {
	r := lx.r
	if r.blockOpen != "" {
		if need(buf, r.blockOpen, atEOF) {
			return -1, false
		}
		if hasPrefix(buf, r.blockOpen) {
			lx.mode = mBlockComment
			lx.depth = 1
			return len(r.blockOpen), true
		}
	}
	for _, s := range r.lineComments {
		if need(buf, s, atEOF) {
			return -1, false
		}
		if hasPrefix(buf, s) {
			if s == "#" && r.hashAtWord && !wordBoundary(lx.prev) {
				continue
			}
			lx.mode = mLineComment
			return len(s), true
		}
	}
	return 0, false
}

// wordBoundary reports whether a shell word may start after b.
func wordBoundary(b byte) bool {
	switch b {
	case ' ', '\t', '\n', '\r', ';', '|', '&', '(', ')', '`':
		return true
	}
	return false
}

// scanLineComment consumes a line comment up to, not including, its newline.
func (lx *lexer) scanLineComment(buf []byte) int {
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		lx.mode = mNormal
		return i
	}
	return len(buf)
}

func (lx *lexer) scanBlockComment(buf []byte, atEOF bool) int {
	r := lx.r
	open, close := r.blockOpen, r.blockClose
	for i := 0; i < len(buf); i++ {
		if !r.nestedBlocks {
			// Only the closer's first byte matters: jump to it.
			j := bytes.IndexByte(buf[i:], close[0])
			if j < 0 {
				return len(buf)
			}
			i += j
		}
		c := buf[i]
		if c == close[0] {
			if need(buf[i:], close, atEOF) {
				return i
			}
			if hasPrefix(buf[i:], close) {
				i += len(close) - 1
				lx.depth--
				if lx.depth == 0 {
					lx.mode = mNormal
					return i + 1
				}
				continue
			}
		}
		if r.nestedBlocks && c == open[0] {
			if need(buf[i:], open, atEOF) {
				return i
			}
			if hasPrefix(buf[i:], open) {
				i += len(open) - 1
				lx.depth++
			}
		}
	}
	return len(buf)
}

// openString starts a string literal at buf[0], a quote byte.
func (lx *lexer) openString(buf []byte, atEOF bool) int {
	r := lx.r
	q := buf[0]
	if r.rustChars && q == '\'' {
		return lx.rustQuote(buf, atEOF)
	}
	n := 1
	triple := false
	if strings.IndexByte(r.triple, q) >= 0 {
		qqq := triples[q]
		if need(buf, qqq, atEOF) {
			return 0
		}
		if len(buf) >= 3 && string(buf[:3]) == qqq {
			triple, n = true, 3
		}
	}
	lx.quote = q
	lx.triple = triple
	lx.multi = triple || strings.IndexByte(r.multiline, q) >= 0
	lx.raw = strings.IndexByte(r.rawQuotes, q) >= 0
	lx.esc = false
	lx.after = mString
	lx.emitQuote(n)
	return n
}

// quoteHash is the hash of every string delimiter, and of every quote inside a
// literal: "abc", 'abc' and """abc""" are the same string to a model that reformats
// code (as Black turns ' into "), and a passage that starts inside a literal reads
// its quotes the other way round.
var quoteHash = xxhash.Sum64String(`"`)

// emitQuote emits the n bytes at the next offset as a string delimiter.
func (lx *lexer) emitQuote(n int) {
	lx.begin(Punct)
	lx.emit(n)
	q := &(*lx.out)[len(*lx.out)-1]
	q.Hash, q.InLit = quoteHash, false
}

// rustQuote decides whether a quote in Rust opens a char literal ('a', '\n', '\u{1F600}')
// or marks a lifetime ('a, 'static); a lifetime's quote is punctuation.
func (lx *lexer) rustQuote(buf []byte, atEOF bool) int {
	// A char literal is a quote, one character or an escape, and a quote.
	end := -1
	if len(buf) >= 2 && buf[1] == '\\' {
		for i := 3; i < len(buf) && i < 12; i++ {
			if buf[i] == '\'' {
				end = i
				break
			}
		}
		if end < 0 && !atEOF && len(buf) < 12 {
			return 0
		}
	} else if len(buf) >= 2 {
		w := utf8Len(buf[1])
		if len(buf) < w+2 && !atEOF {
			return 0
		}
		if len(buf) >= w+2 && buf[1+w] == '\'' && buf[1] != '\'' {
			end = 1 + w
		}
	} else if !atEOF {
		return 0
	}
	if end < 0 {
		lx.begin(Punct)
		lx.emitBytes(buf[:1], 1)
		return 1
	}
	lx.begin(String)
	lx.hashPart(buf[1:end])
	lx.emit(end + 1)
	return end + 1
}

// triples maps a quote byte to its triple form.
var triples = map[byte]string{'"': `"""`, '\'': "'''", '`': "```"}

func utf8Len(b byte) int {
	switch {
	case b < 0xc0:
		return 1
	case b < 0xe0:
		return 2
	case b < 0xf0:
		return 3
	}
	return 4
}

// scanString scans the contents of a string literal. They are tokenized as code is,
// words and punctuation, only with no comments and no nested literals, and with
// escapes skipped. So a passage that begins inside a multi-line literal (half a
// docstring) tokenizes the same whether or not the lexer knows it is inside one: the
// quotes are tokens either way.
func (lx *lexer) scanString(buf []byte, atEOF bool) int {
	q := lx.quote
	cl := lx.class
	for i := 0; i < len(buf); i++ {
		c := buf[i]
		if lx.esc {
			lx.esc = false
			continue
		}
		switch {
		case c == '\\' && !lx.raw:
			lx.esc = true
		case c == q:
			n := 1
			if lx.triple {
				qqq := triples[q]
				if need(buf[i:], qqq, atEOF) {
					return i
				}
				if !hasPrefix(buf[i:], qqq) {
					continue // a quote inside a triple-quoted literal
				}
				n = 3
			}
			if i > 0 {
				return i
			}
			lx.after = mNormal
			lx.emitQuote(n)
			return n
		case c == '\n' && !lx.multi:
			// An unterminated literal ends at the line's end, so that a stray quote
			// cannot swallow the rest of the text.
			lx.after = mNormal
			lx.mode = mNormal
			return i
		case cl[c]&cWhite != 0:
		default:
			if i > 0 {
				return i // the token starts at the next call, at its own offset
			}
			// Words are String tokens; numbers and punctuation keep their kinds (a
			// literal of stars or digits is no prose).
			switch {
			case cl[c]&cDigit != 0:
				lx.begin(Number)
				lx.mode = mNumber
				return lx.scanWord(buf, atEOF)
			case cl[c]&cStart != 0:
				lx.begin(String)
				lx.mode = mIdent
				return lx.scanWord(buf, atEOF)
			}
			if strings.IndexByte(lx.r.quotes, c) >= 0 {
				// A quote inside a literal is a quote as well: which quotes open and
				// which close depends on where a passage starts.
				lx.emitQuote(1)
				(*lx.out)[len(*lx.out)-1].InLit = true
				return 1
			}
			lx.begin(Punct)
			lx.emitBytes(buf[:1], 1)
			return 1
		}
	}
	return len(buf)
}

func (lx *lexer) scanWord(buf []byte, atEOF bool) int {
	cl := lx.class
	esc := lx.r.identEsc
	for i := 0; i < len(buf); i++ {
		c := buf[i]
		if lx.mode == mIdent && esc && c == '\\' {
			if i+1 >= len(buf) {
				if atEOF {
					lx.hashPart(buf[:i+1])
					lx.emit(i + 1)
					return i + 1
				}
				lx.hashPart(buf[:i])
				return i
			}
			i++
			continue
		}
		ok := cl[c]&cIdent != 0
		if lx.mode == mNumber && c == '.' {
			// A dot continues a number only before a digit: 1.5, but "42." ends a sentence.
			if i+1 == len(buf) && !atEOF {
				lx.hashPart(buf[:i])
				return i
			}
			ok = i+1 < len(buf) && buf[i+1] >= '0' && buf[i+1] <= '9'
		}
		if !ok {
			lx.emitWord(buf[:i])
			return i
		}
	}
	if atEOF {
		lx.emitWord(buf)
		return len(buf)
	}
	lx.hashPart(buf)
	return len(buf)
}

// emitWord ends the word in progress, whose last bytes are b: hashed in place
// when they are all of it (the common case), else added to what is held.
func (lx *lexer) emitWord(b []byte) {
	if len(lx.text) > 0 || lx.digUsed {
		lx.hashPart(b)
		lx.emit(len(b))
		return
	}
	t := lx.tok
	t.End = int32(lx.off + len(b))
	t.Hash = xxhash.Sum64(b)
	if t.Kind == Ident && lx.keywords.has(t.Hash) {
		t.Kind = Keyword
	}
	t.InLit = lx.after == mString
	*lx.out = append(*lx.out, t)
	lx.mode = lx.after
}

// begin starts a token at the next unconsumed byte.
func (lx *lexer) begin(k Kind) {
	lx.tok = Token{Off: int32(lx.off), Line: lx.line, Kind: k}
	lx.text = lx.text[:0]
	lx.digUsed = false
}

// hashPart adds bytes to the token in progress.
func (lx *lexer) hashPart(b []byte) {
	if lx.digUsed {
		lx.dig.Write(b)
		return
	}
	if len(lx.text)+len(b) <= maxInline {
		lx.text = append(lx.text, b...)
		return
	}
	lx.dig.Reset()
	lx.dig.Write(lx.text)
	lx.dig.Write(b)
	lx.digUsed = true
}

// emitBytes emits a token whose whole text is b.
func (lx *lexer) emitBytes(b []byte, n int) {
	lx.hashPart(b)
	lx.emit(n)
}

// emit ends the token in progress; n is how many bytes of the current scan position
// belong to it (they are consumed by the caller).
func (lx *lexer) emit(n int) {
	t := lx.tok
	t.End = int32(lx.off + n)
	if lx.digUsed {
		t.Hash = lx.dig.Sum64()
	} else {
		t.Hash = xxhash.Sum64(lx.text)
		if t.Kind == Ident && lx.keywords.has(t.Hash) {
			t.Kind = Keyword
		}
	}
	t.InLit = lx.after == mString
	*lx.out = append(*lx.out, t)
	lx.mode = lx.after
	lx.text = lx.text[:0]
	lx.digUsed = false
}

// pending returns the offset of the first byte whose token is not yet decided.
func (lx *lexer) pending() int {
	switch lx.mode {
	case mIdent, mNumber:
		return int(lx.tok.Off)
	}
	return lx.off
}

// finish ends the text: a token in progress is emitted, a comment is closed.
func (lx *lexer) finish() {
	if len(lx.pend) > 0 {
		p := lx.pend
		lx.pend = nil
		n := lx.scan(p, true)
		if n < len(p) { // cannot happen: at EOF every byte is decided
			lx.advance(p[n:])
		}
	}
	switch lx.mode {
	case mIdent, mNumber:
		lx.emit(0)
	}
	lx.mode, lx.after = mNormal, mNormal
}

// A tokenSet is a small open-addressed set of token hashes (keywords): a lookup is
// a multiply and a probe or two, where a map of strings hashes the text again.
type tokenSet struct {
	slots []uint64 // 0 is empty; a hash of 0 is never a keyword's
	mask  uint64
}

func newTokenSet(words map[string]bool) tokenSet {
	n := 16
	for n < 4*len(words) {
		n *= 2
	}
	s := tokenSet{slots: make([]uint64, n), mask: uint64(n - 1)}
	for w := range words {
		h := xxhash.Sum64String(w)
		for i := (h * 0x9e3779b97f4a7c15) >> 32 & s.mask; ; i = (i + 1) & s.mask {
			if s.slots[i] == 0 {
				s.slots[i] = h
				break
			}
		}
	}
	return s
}

func (s *tokenSet) has(h uint64) bool {
	if len(s.slots) == 0 {
		return false
	}
	for i := (h * 0x9e3779b97f4a7c15) >> 32 & s.mask; ; i = (i + 1) & s.mask {
		switch s.slots[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

// maxKeyword is the length of the longest keyword of any language.
var maxKeyword = func() (n int) {
	for _, r := range langRules {
		for w := range r.keywords {
			n = max(n, len(w))
		}
	}
	return
}()

var keywordSets = func() (sets [numLangs]tokenSet) {
	for i, r := range langRules {
		sets[i] = newTokenSet(r.keywords)
	}
	return
}()
