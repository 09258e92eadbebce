package proxy

import (
	"sort"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonStrings extracts the strings of a JSON text that arrives in pieces, decoded,
// one per line: the text of a tool call's arguments, where code travels as JSON
// strings ({"path": "a.c", "content": "int main() {\n..."}). It remembers where each
// decoded byte came from, so that a cut found in the decoded text can be made in the
// JSON text.
type jsonStrings struct {
	raw   int // JSON bytes consumed
	dec   int // decoded bytes produced
	inStr bool
	esc   int // 0: none; 1: after a backslash; 2-5: reading the hex digits of \u
	hex   rune
	high  rune // a UTF-16 high surrogate waiting for its low half, or 0
	// cps maps decoded offsets to JSON offsets: from cps[i].dec on, decoded bytes are
	// JSON bytes one for one, starting at cps[i].raw.
	cps []checkpoint
}

type checkpoint struct{ dec, raw int }

// feed consumes a piece of the JSON text and returns the decoded bytes it completes.
func (j *jsonStrings) feed(p []byte) []byte {
	var out []byte
	for _, c := range p {
		j.raw++
		switch {
		case !j.inStr:
			if c == '"' {
				j.inStr = true
				if j.dec > 0 {
					out = append(out, '\n')
					j.dec++
				}
				j.mark()
			}
		case j.esc == 0:
			switch c {
			case '\\':
				j.esc = 1
			case '"':
				j.inStr = false
			default:
				out = append(out, c)
				j.dec++
			}
		case j.esc == 1:
			j.esc = 0
			var d byte
			switch c {
			case 'n':
				d = '\n'
			case 't':
				d = '\t'
			case 'r':
				d = '\r'
			case 'b':
				d = '\b'
			case 'f':
				d = '\f'
			case 'u':
				j.esc, j.hex = 2, 0
				continue
			default: // '"', '\\', '/', and anything a lenient writer escapes
				d = c
			}
			out = append(out, d)
			j.dec++
			j.mark()
		default: // a hex digit of \uXXXX
			j.hex = j.hex<<4 | rune(unhex(c))
			if j.esc++; j.esc < 6 {
				continue
			}
			j.esc = 0
			r := j.hex
			switch {
			case utf16.IsSurrogate(r) && r < 0xdc00:
				j.high = r
				continue
			case utf16.IsSurrogate(r) && j.high != 0:
				r = utf16.DecodeRune(j.high, r)
			}
			j.high = 0
			out = utf8.AppendRune(out, r)
			j.dec += utf8.RuneLen(r)
			j.mark()
		}
	}
	return out
}

func (j *jsonStrings) mark() { j.cps = append(j.cps, checkpoint{j.dec, j.raw}) }

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// rawOffset returns the offset in the JSON text of decoded offset d.
func (j *jsonStrings) rawOffset(d int) int { return checkpointOffset(j.cps, d, j.raw, 0) }

// checkpointOffset maps decoded offset d back through cps to an offset of the raw
// text (raw bytes long); before the first checkpoint it is before.
func checkpointOffset(cps []checkpoint, d, raw, before int) int {
	i := sort.Search(len(cps), func(i int) bool { return cps[i].dec > d }) - 1
	if i < 0 {
		return min(before, raw)
	}
	return min(cps[i].raw+d-cps[i].dec, raw)
}
