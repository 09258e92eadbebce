package fingerprint

import "bytes"

// maxFenceLine bounds how much of a line is held back while it might be a code fence;
// a longer line is not a fence.
const maxFenceLine = 256

// markdown splits text into prose and fenced code blocks (``` or ~~~, as CommonMark
// has them) and tokenizes each part with its own rules: prose as Text, a block in the
// language its info string names. Fence lines themselves produce no tokens.
type markdown struct {
	lx       *lexer
	def      Lang   // language of a fence that names none, or an unknown one
	hold     []byte // the start of the current line, held while it may be a fence
	lineHead bool   // the next byte starts a line
	inFence  bool
	fence    byte // '`' or '~'
	fenceLen int
}

func newMarkdown(lx *lexer, def Lang) *markdown {
	lx.reset(Text, 0, 1)
	return &markdown{lx: lx, def: def, lineHead: true}
}

func (m *markdown) feed(p []byte, atEOF bool) {
	for len(p) > 0 {
		if m.lineHead || len(m.hold) > 0 {
			n := m.head(p, false)
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			m.lx.feed(p, false)
			break
		}
		m.lx.feed(p[:i+1], false)
		p = p[i+1:]
		m.lineHead = true
	}
	if atEOF {
		if len(m.hold) > 0 {
			m.head(nil, true)
		}
		m.lx.feed(nil, true)
	}
}

// head consumes bytes at the start of a line and reports how many. While the line
// may be a fence it is held; once decided it is either a fence, handled here, or
// ordinary text, handed to the lexer.
func (m *markdown) head(p []byte, atEOF bool) int {
	m.lineHead = false
	n := len(p)
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		n = i + 1
	}
	if len(m.hold)+n > maxFenceLine {
		n = maxFenceLine - len(m.hold)
	}
	m.hold = append(m.hold, p[:n]...)
	complete := atEOF || bytes.HasSuffix(m.hold, newline) || len(m.hold) >= maxFenceLine
	switch m.classify(complete) {
	case lineUndecided:
		return n
	case lineText:
		m.release()
	case lineOpen, lineClose:
		// handled by classify
	}
	return n
}

type lineKind uint8

const (
	lineUndecided lineKind = iota
	lineText
	lineOpen
	lineClose
)

// classify decides what the held line is, switching the lexer at a fence.
func (m *markdown) classify(complete bool) lineKind {
	h := m.hold
	i := 0
	for i < len(h) && i < 3 && h[i] == ' ' {
		i++
	}
	if i == len(h) {
		if complete {
			return lineText
		}
		return lineUndecided
	}
	c := h[i]
	if c != '`' && c != '~' || (m.inFence && c != m.fence) {
		return lineText
	}
	j := i
	for j < len(h) && h[j] == c {
		j++
	}
	if j-i < 3 {
		if j == len(h) && !complete {
			return lineUndecided
		}
		return lineText
	}
	if !complete {
		return lineUndecided
	}
	if len(h) >= maxFenceLine && !bytes.HasSuffix(h, newline) {
		return lineText
	}
	info := bytes.TrimSpace(h[j:])
	if m.inFence {
		if j-i < m.fenceLen || len(info) > 0 {
			return lineText
		}
		m.switchTo(Text, false)
		return lineClose
	}
	if c == '`' && bytes.IndexByte(info, '`') >= 0 {
		return lineText
	}
	lang := m.def
	if f := bytes.Fields(info); len(f) > 0 {
		if l, ok := LangByName(string(bytes.TrimPrefix(f[0], []byte("{.")))); ok && l != Markdown {
			lang = l
		}
	}
	m.fence, m.fenceLen = c, j-i
	m.switchTo(lang, true)
	return lineOpen
}

// switchTo ends the current part of the text at the held fence line and starts the
// next one after it.
func (m *markdown) switchTo(l Lang, open bool) {
	m.lx.feed(nil, true)
	off := m.lx.off + len(m.hold)
	line := m.lx.line + int32(bytes.Count(m.hold, newline))
	m.lx.reset(l, off, line)
	m.inFence = open
	m.hold = m.hold[:0]
	m.lineHead = true
}

func (m *markdown) release() {
	m.lx.feed(m.hold, false)
	if bytes.HasSuffix(m.hold, newline) {
		m.lineHead = true
	}
	m.hold = m.hold[:0]
}
