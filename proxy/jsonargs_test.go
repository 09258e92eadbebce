package proxy

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestJSONStrings(t *testing.T) {
	code := "int main(void) {\n\tputs(\"h\\u00e9llo \\\"w\\\"\");\n\treturn 0; // é 😀\n}\n"
	args, _ := json.Marshal(map[string]any{"path": "src/main.c", "mode": 0o644, "content": code, "tags": []string{"a/b", "<c>"}})
	rng := rand.New(rand.NewPCG(3, 3))
	for trial := 0; trial < 200; trial++ {
		var j jsonStrings
		var dec []byte
		for off := 0; off < len(args); {
			n := min(1+rng.IntN(7), len(args)-off)
			dec = append(dec, j.feed(args[off:off+n])...)
			off += n
		}
		want := "src/main.c\nint main(void) {"
		if !strings.Contains(string(dec), code) || !strings.Contains(string(dec), "a/b\n<c>") || !strings.Contains(string(dec), "mode") {
			t.Fatalf("decoded %q, want the strings, one per line", dec)
		}
		_ = want
		// Every decoded position inside the code maps to the JSON text so that the
		// JSON before it decodes to the decoded text before it.
		start := strings.Index(string(dec), code)
		for d := start; d <= start+len(code); d++ {
			r := j.rawOffset(d)
			var k jsonStrings
			got := k.feed(args[:r])
			if string(got) != string(dec[:d]) {
				t.Fatalf("rawOffset(%d) = %d: JSON before it decodes to %q, want %q", d, r, got, dec[:d])
			}
		}
	}
}
