package proxy

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A chunk is what the filter reads of one streamed chunk: the choices and, in
// them, the texts. readChunk fills it in one pass over the JSON, validating all of
// it and building nothing else: most chunks then go out byte for byte, and only
// those the proxy changes are decoded whole (with encoding/json).
type chunk struct {
	object   bool // the JSON is an object
	choices  []chunkChoice
	isArray  bool // choices is an array
	hasError bool // the object has an "error" member
	// textOff and textEnd delimit the JSON string of the text of the chunk's
	// only choice (0 when there is no one such string), textIsText says it is
	// text, not delta.content.
	textOff, textEnd int
	textIsText       bool
	repeats          bool // a member that holds text (or holds what does) is given twice
}

// A chunkShape is a chunk read whole less the one string that carries its text.
// A stream's chunks differ, as a rule, only in that string: one that matches the
// shape, byte for byte around the string, is read by reading that string alone.
// (Putting a string in place of a string keeps a JSON text valid, and its
// structure, duplicate members and all, the same.)
type chunkShape struct {
	prefix, suffix []byte
	choice         chunkChoice // with the text empty
	text           bool        // the string is choices[0].text, not delta.content
}

// read reads data into c at once if it has the shape sh, whole (learning its shape)
// otherwise. It reports what readChunk does.
func (sh *chunkShape) read(data []byte, c *chunk) bool {
	if sh.prefix != nil && len(data) >= len(sh.prefix)+len(sh.suffix)+2 &&
		bytes.HasPrefix(data, sh.prefix) && bytes.HasSuffix(data, sh.suffix) {
		mid := data[len(sh.prefix) : len(data)-len(sh.suffix)]
		r := jsonReader{b: mid}
		if mid[0] == '"' {
			if str, ok := r.str(false); ok && r.i == len(mid) {
				*c = chunk{object: true, isArray: true, choices: append(c.choices[:0], sh.choice)}
				if sh.text {
					c.choices[0].text = string(str)
				} else {
					c.choices[0].content = string(str)
				}
				return true
			}
		}
	}
	ok := readChunk(data, c)
	sh.prefix, sh.suffix = nil, nil
	if ok && c.textEnd > 0 && !c.repeats && len(c.choices) == 1 && !c.choices[0].tools && !c.hasError {
		sh.prefix = append(sh.prefix, data[:c.textOff]...)
		sh.suffix = append(sh.suffix, data[c.textEnd:]...)
		sh.choice = c.choices[0]
		sh.choice.calls = nil
		sh.text = c.textIsText
		sh.choice.text, sh.choice.content = "", ""
	}
	return ok
}

// A chunkChoice is one element of a chunk's choices.
type chunkChoice struct {
	object  bool // the element is an object; nothing else is read otherwise
	index   int
	text    string // choices[].text (legacy completions), if a string
	content string // choices[].delta.content, if a string
	tools   bool   // delta has a tool_calls member
	calls   []chunkCall
	finish  bool // finish_reason is there and not null
}

// A chunkCall is one element of delta.tool_calls.
type chunkCall struct {
	index int
	args  string // function.arguments, if a string
}

// readChunk reads data into c, reusing c's slices, and reports whether data is
// one valid JSON value (RFC 8259, as encoding/json accepts it). A member given
// twice counts with its last value, as encoding/json and JavaScript read it.
func readChunk(data []byte, c *chunk) bool {
	choices := c.choices[:0]
	*c = chunk{}
	texts := 0 // text strings seen
	r := jsonReader{b: data}
	r.ws()
	if r.peek() == '{' {
		c.object = true
		r.object(func(key []byte) {
			switch string(key) {
			case "choices":
				c.repeats = c.repeats || c.isArray
				choices = choices[:0]
				c.isArray = r.peek() == '['
				if !c.isArray {
					r.skip()
					return
				}
				r.array(func() {
					choices = grow(choices)
					r.choice(&choices[len(choices)-1], c, &texts)
				})
			case "error":
				c.hasError = true
				r.skip()
			default:
				r.skip()
			}
		})
	} else {
		r.skip()
	}
	r.ws()
	c.choices = choices
	if texts != 1 || len(choices) != 1 {
		c.textOff, c.textEnd = 0, 0
	}
	return !r.bad && r.i == len(r.b)
}

// choice reads one element of choices, noting in c where its text strings are.
func (r *jsonReader) choice(ch *chunkChoice, c *chunk, texts *int) {
	if r.peek() != '{' {
		r.skip()
		return
	}
	calls := ch.calls[:0]
	*ch = chunkChoice{object: true}
	seen := 0 // text and delta members
	r.object(func(key []byte) {
		switch string(key) {
		case "index":
			ch.index = r.int()
		case "text":
			seen++
			ch.text = r.textString(c, texts, true)
		case "finish_reason":
			ch.finish = r.peek() != 'n' // anything but null
			r.skip()
		case "delta":
			seen++
			ch.content, ch.tools, calls = "", false, calls[:0]
			if r.peek() != '{' {
				r.skip()
				return
			}
			r.object(func(key []byte) {
				switch string(key) {
				case "content":
					ch.content = r.textString(c, texts, false)
				case "tool_calls":
					ch.tools = true
					calls = calls[:0]
					if r.peek() != '[' {
						ch.tools = false // not a list: nothing a client reads as calls
						r.skip()
						return
					}
					r.array(func() {
						calls = grow(calls)
						calls[len(calls)-1] = chunkCall{}
						r.toolCall(&calls[len(calls)-1])
					})
				default:
					r.skip()
				}
			})
		default:
			r.skip()
		}
	})
	ch.calls = calls
	c.repeats = c.repeats || seen > 1
}

func (r *jsonReader) toolCall(tc *chunkCall) {
	if r.peek() != '{' {
		r.skip()
		return
	}
	r.object(func(key []byte) {
		switch string(key) {
		case "index":
			tc.index = r.int()
		case "function":
			tc.args = ""
			if r.peek() != '{' {
				r.skip()
				return
			}
			r.object(func(key []byte) {
				if string(key) == "arguments" {
					tc.args = r.optString()
				} else {
					r.skip()
				}
			})
		default:
			r.skip()
		}
	})
}

// grow extends s by one element, keeping what its backing array held there.
func grow[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}

// A jsonReader reads JSON text in one pass. On the first error it sets bad and
// stops moving; every method is then a no-op.
type jsonReader struct {
	b     []byte
	i     int
	depth int
	bad   bool
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

func (r *jsonReader) fail() {
	r.bad = true
	r.i = len(r.b)
}

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

func (r *jsonReader) expect(c byte) bool {
	if r.peek() != c {
		r.fail()
		return false
	}
	r.i++
	return true
}

// object reads an object, calling member with each key (unescaped) at its value,
// which member must read.
func (r *jsonReader) object(member func(key []byte)) {
	if !r.expect('{') || !r.enter() {
		return
	}
	defer r.leave()
	if r.peek() == '}' {
		r.i++
		return
	}
	for !r.bad {
		if r.peek() != '"' {
			r.fail()
			return
		}
		key, _ := r.str(false)
		if !r.expect(':') {
			return
		}
		member(key)
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return
		default:
			r.fail()
		}
	}
}

// array reads an array, calling elem at each element, which elem must read.
func (r *jsonReader) array(elem func()) {
	if !r.expect('[') || !r.enter() {
		return
	}
	defer r.leave()
	if r.peek() == ']' {
		r.i++
		return
	}
	for !r.bad {
		elem()
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return
		default:
			r.fail()
		}
	}
}

func (r *jsonReader) enter() bool {
	r.depth++
	if r.depth > maxDepth {
		r.fail()
		return false
	}
	return true
}

func (r *jsonReader) leave() { r.depth-- }

// skip reads any value.
func (r *jsonReader) skip() {
	switch c := r.peek(); {
	case c == '{':
		r.object(func([]byte) { r.skip() })
	case c == '[':
		r.array(r.skip)
	case c == '"':
		r.str(true)
	case c == '-' || c >= '0' && c <= '9':
		r.number()
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	default:
		r.fail()
	}
}

func (r *jsonReader) literal(word string) {
	if len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		r.fail()
		return
	}
	r.i += len(word)
}

// number reads a number and returns its text.
func (r *jsonReader) number() []byte {
	start := r.i
	digits := func() int {
		n := 0
		for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case digits() == 0:
		r.fail()
		return nil
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if digits() == 0 {
			r.fail()
			return nil
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			r.fail()
			return nil
		}
	}
	return r.b[start:r.i]
}

// int reads a value as toInt reads one decoded with UseNumber: an integer
// number's value, 0 for anything else.
func (r *jsonReader) int() int {
	if c := r.peek(); c != '-' && (c < '0' || c > '9') {
		r.skip()
		return 0
	}
	n, err := strconv.ParseInt(string(r.number()), 10, 64)
	if err != nil {
		return 0
	}
	return int(n)
}

// textString reads a value and returns it if it is a string, else "", noting in c
// where the string is.
func (r *jsonReader) textString(c *chunk, texts *int, isText bool) string {
	if r.peek() != '"' {
		r.skip()
		return ""
	}
	off := r.i
	s, _ := r.str(false)
	c.textOff, c.textEnd, c.textIsText = off, r.i, isText
	*texts++
	return string(s)
}

// optString reads a value and returns it if it is a string, else "".
func (r *jsonReader) optString() string {
	if r.peek() != '"' {
		r.skip()
		return ""
	}
	s, _ := r.str(false)
	return string(s)
}

// str reads a string and returns it unescaped (unless onlyCheck), invalid UTF-8
// and lone surrogates replaced by U+FFFD, as encoding/json decodes strings. The
// slice may alias the input.
func (r *jsonReader) str(onlyCheck bool) ([]byte, bool) {
	if !r.expect('"') {
		return nil, false
	}
	start := r.i
	// The common case: no escape, all ASCII.
	for r.i < len(r.b) {
		c := r.b[r.i]
		if c == '"' {
			r.i++
			return r.b[start : r.i-1], true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		r.i++
	}
	var out []byte
	if !onlyCheck {
		out = append(make([]byte, 0, r.i-start+16), r.b[start:r.i]...)
	}
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return out, true
		case c < 0x20:
			r.fail()
			return nil, false
		case c == '\\':
			if r.i+1 >= len(r.b) {
				r.fail()
				return nil, false
			}
			e := r.b[r.i+1]
			r.i += 2
			var ch byte
			switch e {
			case '"', '\\', '/':
				ch = e
			case 'b':
				ch = '\b'
			case 'f':
				ch = '\f'
			case 'n':
				ch = '\n'
			case 'r':
				ch = '\r'
			case 't':
				ch = '\t'
			case 'u':
				u, ok := r.hex4()
				if !ok {
					return nil, false
				}
				rn := rune(u)
				if utf16.IsSurrogate(rn) {
					rn = utf8.RuneError
					if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
						save := r.i
						r.i += 2
						u2, ok := r.hex4()
						if !ok {
							return nil, false
						}
						if dec := utf16.DecodeRune(rune(u), rune(u2)); dec != utf8.RuneError {
							rn = dec
						} else {
							r.i = save // the second escape stands alone
						}
					}
				}
				if !onlyCheck {
					out = utf8.AppendRune(out, rn)
				}
				continue
			default:
				r.fail()
				return nil, false
			}
			if !onlyCheck {
				out = append(out, ch)
			}
		case c < utf8.RuneSelf:
			if !onlyCheck {
				out = append(out, c)
			}
			r.i++
		default:
			rn, size := utf8.DecodeRune(r.b[r.i:])
			if !onlyCheck {
				if rn == utf8.RuneError && size == 1 {
					out = utf8.AppendRune(out, utf8.RuneError)
				} else {
					out = append(out, r.b[r.i:r.i+size]...)
				}
			}
			r.i += size
		}
	}
	r.fail()
	return nil, false
}

func (r *jsonReader) hex4() (uint16, bool) {
	if len(r.b)-r.i < 4 {
		r.fail()
		return 0, false
	}
	var u uint16
	for _, c := range r.b[r.i : r.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			r.fail()
			return 0, false
		}
		u = u<<4 | uint16(c)
	}
	r.i += 4
	return u, true
}
