package proxy

import "strconv"

// The wires of the semantic-event APIs (Responses, Messages) read each event's
// JSON in one pass with a jsonReader, by exact keys, as a client's JSON.parse reads
// them, of a key given twice the last: no map of members per event (reading a
// stream of small events into maps cost four fifths of the proxy's time), and no
// struct decoding (encoding/json also takes "Text" for "text", and a client would
// show the one the proxy did not check).

// raw reads any value and returns its bytes (nil where the value is null).
func (r *jsonReader) raw() []byte {
	r.ws()
	start := r.i
	r.skip()
	if r.bad || string(r.b[start:r.i]) == "null" {
		return nil
	}
	return r.b[start:r.i]
}

// nullString reads a string or null into *dst (nil for null); anything else is
// noted in *bad as what is not a string.
func (r *jsonReader) nullString(dst **string, what string, bad *string) {
	switch r.peek() {
	case '"':
		s, _ := r.str(false)
		v := string(s)
		*dst = &v
	case 'n':
		r.skip()
		*dst = nil
	default:
		r.skip()
		*bad = what + " is not a string"
	}
}

// nullInt reads an integer or null into *dst, as nullString reads strings.
func (r *jsonReader) nullInt(dst **int, what string, bad *string) {
	switch c := r.peek(); {
	case c == 'n':
		r.skip()
		*dst = nil
	case c == '-' || c >= '0' && c <= '9':
		n, err := strconv.Atoi(string(r.number()))
		if err != nil {
			*bad = what + " is not an integer"
			return
		}
		*dst = &n
	default:
		r.skip()
		*bad = what + " is not an integer"
	}
}

// scanObject reads data, which must be one JSON object, calling member with each
// key at its value, which member must read. It returns what is wrong with data, or
// "".
func scanObject(data []byte, member func(r *jsonReader, key string)) string {
	r := jsonReader{b: data}
	if r.peek() != '{' {
		return "not a JSON object"
	}
	r.object(func(key []byte) { member(&r, string(key)) })
	r.ws()
	if r.bad || r.i != len(r.b) {
		return "not valid JSON"
	}
	return ""
}

// textKeys are the members whose strings a client takes for text the model wrote.
var textKeys = map[string]bool{"text": true, "arguments": true, "input": true, "code": true, "refusal": true, "delta": true}

// sameTexts reports whether every non-empty string that data (a JSON value) holds
// under a member named in textKeys, at any depth, is one of want, each of want
// matched once at most: then an event that repeats texts whole repeats only what
// was checked, and can go out as it came. It reads data in one pass and, for
// strings without escapes, allocates nothing.
func sameTexts(data []byte, want []string) bool {
	used := make([]bool, len(want))
	r := jsonReader{b: data}
	ok := true
	var value func(isText bool)
	value = func(isText bool) {
		switch r.peek() {
		case '{':
			r.object(func(key []byte) { value(textKeys[string(key)]) })
		case '[':
			r.array(func() { value(isText) })
		case '"':
			if !isText {
				r.str(true)
				return
			}
			s, _ := r.str(false)
			if len(s) == 0 {
				return
			}
			for i, w := range want {
				if !used[i] && w == string(s) {
					used[i] = true
					return
				}
			}
			ok = false
		default:
			r.skip()
		}
	}
	value(false)
	r.ws()
	return ok && !r.bad && r.i == len(r.b)
}

// nullObject reads an object, calling member with each key at its value, or null;
// anything else is noted in *bad as what is not an object. It reports whether it
// read an object.
func (r *jsonReader) nullObject(what string, bad *string, member func(key []byte)) bool {
	switch r.peek() {
	case '{':
		r.object(member)
		return true
	case 'n':
		r.skip()
	default:
		r.skip()
		*bad = what + " is not a JSON object"
	}
	return false
}
