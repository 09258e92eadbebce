package fingerprint

import (
	"slices"
	"testing"
)

// FuzzTokenize checks, for any input, language and cut points, that the tokenizer
// does not panic, that its tokens keep their invariants, and that a stream cut at two
// places yields the whole text's tokens and fingerprints.
func FuzzTokenize(f *testing.F) {
	f.Add([]byte("int main() { /* x */ return \"a\\\"\"; }"), uint8(C), uint16(3), uint16(17))
	f.Add([]byte("```python\ndef f(): '''x\n'''\n```\n"), uint8(Markdown), uint16(4), uint16(20))
	f.Add([]byte("fn f<'a>(c: char) { '\\u{1F600}' }"), uint8(Rust), uint16(6), uint16(9))
	f.Add([]byte("(defun f (x) ?\\( \"doc\" ; c\n)"), uint8(EmacsLisp), uint16(1), uint16(2))
	f.Add([]byte("echo ${#a} # c\n"), uint8(Shell), uint16(7), uint16(8))
	f.Fuzz(func(t *testing.T, text []byte, lang uint8, a, b uint16) {
		l := Lang(lang % uint8(numLangs))
		p := Params{K: 3, W: 2}
		toks, fps := Fingerprints(p, l, text)
		checkTokens(t, l, text, toks, "fuzz")
		i, j := int(a)%(len(text)+1), int(b)%(len(text)+1)
		if i > j {
			i, j = j, i
		}
		s := NewStream(p, l)
		s.Write(text[:i])
		s.Write(text[i:j])
		s.Write(text[j:])
		s.Close()
		if !slices.Equal(s.Tokens, toks) || !slices.Equal(s.Fingerprints, fps) {
			t.Fatalf("cut at %d and %d: stream differs from the whole text", i, j)
		}
	})
}
