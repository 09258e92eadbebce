package fingerprint

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// naiveWinnow is winnowing by its definition: for every window of w k-gram hashes,
// the minimum; on ties the previous choice while it is in the window, else the
// rightmost minimum. It records each choice that differs from the previous one.
func naiveWinnow(p Params, toks []uint64) []Fingerprint {
	fps, _ := naiveWinnowAt(p, toks)
	return fps
}

// naiveWinnowAt also returns, for each fingerprint, the index of the last k-gram of
// the window that chose it: the fingerprint is determined once that k-gram is.
func naiveWinnowAt(p Params, toks []uint64) ([]Fingerprint, []int) {
	var kg []uint64
	for i := 0; i+p.K <= len(toks); i++ {
		var h uint64
		for j := 0; j < p.K; j++ {
			h = h*rollBase + toks[i+j]
		}
		kg = append(kg, mix(h))
	}
	var out []Fingerprint
	var at []int
	prev := -1
	for s := 0; s+p.W <= len(kg); s++ {
		m := kg[s]
		for _, h := range kg[s : s+p.W] {
			m = min(m, h)
		}
		sel := prev
		if prev < s || kg[prev] != m {
			for j := s + p.W - 1; j >= s; j-- {
				if kg[j] == m {
					sel = j
					break
				}
			}
		}
		if sel != prev {
			out = append(out, Fingerprint{Hash: kg[sel], Pos: int32(sel)})
			at = append(at, s+p.W-1)
			prev = sel
		}
	}
	return out, at
}

func hashesOf(toks []Token) []uint64 {
	hs := make([]uint64, len(toks))
	for i, t := range toks {
		hs[i] = t.Hash
	}
	return hs
}

// winnowHashes runs the production winnower over token hashes.
func winnowHashes(p Params, hs []uint64) []Fingerprint {
	w := NewWinnower(p)
	var out []Fingerprint
	for _, h := range hs {
		if f, ok := w.Push(h); ok {
			out = append(out, f)
		}
	}
	return out
}

func TestWinnowMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []Params{{K: 1, W: 1}, {K: 3, W: 4}, {K: 5, W: 1}, DefaultParams, {K: 2, W: 30}} {
		for trial := 0; trial < 200; trial++ {
			n := rng.IntN(300)
			alphabet := uint64(1 + rng.IntN(4)) // few distinct tokens: many tied k-grams
			if trial%2 == 0 {
				alphabet = 1 << 62
			}
			hs := make([]uint64, n)
			for i := range hs {
				hs[i] = rng.Uint64N(alphabet)
			}
			got, want := winnowHashes(p, hs), naiveWinnow(p, hs)
			if !slices.Equal(got, want) {
				t.Fatalf("%v, %d tokens over %d values: winnower chose\n%v\nwant\n%v", p, n, alphabet, got, want)
			}
		}
	}
}

// TestGuarantee plants a shared run of exactly t tokens in two unrelated texts and
// checks that the texts always share a fingerprint inside it.
func TestGuarantee(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := DefaultParams
	tt := p.Threshold()
	for trial := 0; trial < 3000; trial++ {
		alphabet := uint64(1 << 62)
		if trial%3 == 0 {
			alphabet = 3 // repetitive code: ties everywhere
		}
		gen := func(n int) []uint64 {
			hs := make([]uint64, n)
			for i := range hs {
				hs[i] = rng.Uint64N(alphabet) + 1<<63 // never equal to the planted run's
			}
			return hs
		}
		run := make([]uint64, tt)
		for i := range run {
			run[i] = rng.Uint64N(alphabet)
		}
		a, b := gen(rng.IntN(200)), gen(rng.IntN(200))
		ia, ib := rng.IntN(len(a)+1), rng.IntN(len(b)+1)
		a = slices.Concat(a[:ia], run, a[ia:])
		b = slices.Concat(b[:ib], run, b[ib:])
		inA := map[uint64]bool{}
		for _, f := range winnowHashes(p, a) {
			if int(f.Pos) >= ia && int(f.Pos)+p.K <= ia+tt {
				inA[f.Hash] = true
			}
		}
		found := false
		for _, f := range winnowHashes(p, b) {
			if int(f.Pos) >= ib && int(f.Pos)+p.K <= ib+tt && inA[f.Hash] {
				found = true
			}
		}
		if !found {
			t.Fatalf("trial %d: a shared run of %d tokens shares no fingerprint", trial, tt)
		}
	}
}

// adversarial generates text dense in the bytes that decide tokens: quotes, comment
// openers, escapes, fences, multi-byte characters.
func adversarial(rng *rand.Rand, n int) []byte {
	frags := []string{"/*", "*/", "//", "#", ";", "\"", "'", "`", "```", "~~~", "\"\"\"", "'''", "\\", "\n", "\r\n",
		" ", "\t", "é", "€", "😀", "\xff", "\x00", "x", "foo_bar", "12", "1.5", ".", "$", "?\\", "r#", "'a'", "'\\n'",
		"(", ")", "{", "}", "```python\n", "```c\n", "\n```\n", "--", "=", "<!--"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(frags[rng.IntN(len(frags))])
	}
	return b.Bytes()
}

// checkSplits feeds text to a stream in random pieces and compares tokens and
// fingerprints with the whole text's, after every piece as well as at the end.
func checkSplits(t *testing.T, rng *rand.Rand, l Lang, text []byte, name string) {
	t.Helper()
	p := Params{K: 5, W: 4}
	wholeToks, wholeFPs := Fingerprints(p, l, text)
	checkTokens(t, l, text, wholeToks, name)
	naive, decidedAt := naiveWinnowAt(p, hashesOf(wholeToks))
	if !slices.Equal(wholeFPs, naive) {
		t.Fatalf("%s (%s): fingerprints differ from winnowing by definition", name, l)
	}
	s := NewStream(p, l)
	s.EnableRename(Params{K: 4, W: 3})
	s.CollectKGrams()
	whole := NewStream(p, l)
	whole.EnableRename(Params{K: 4, W: 3})
	whole.Write(text)
	whole.Close()
	// d discards what it produced after every write: the same fingerprints, in
	// memory bounded by the window.
	d := NewStream(p, l)
	d.CollectKGrams()
	var dToks []Token
	var dFPs []Fingerprint
	var dKGrams []uint64
	drain := func() {
		dToks, dFPs, dKGrams = append(dToks, d.Tokens...), append(dFPs, d.Fingerprints...), append(dKGrams, d.KGrams...)
		d.Discard()
	}
	lookahead := 16
	if l == Markdown {
		lookahead = maxFenceLine + 16
	}
	for off := 0; off < len(text); {
		n := 1 + rng.IntN(24)
		if rng.IntN(8) == 0 {
			n = 0
		}
		n = min(n, len(text)-off)
		s.Write(text[off : off+n])
		d.Write(text[off : off+n])
		drain()
		off += n
		if len(s.Tokens) > len(wholeToks) || !slices.Equal(s.Tokens, wholeToks[:len(s.Tokens)]) {
			t.Fatalf("%s (%s): after %d bytes the stream's tokens are not a prefix of the whole text's", name, l, off)
		}
		for _, tk := range wholeToks[len(s.Tokens):] {
			if int(tk.End)+lookahead < off {
				t.Fatalf("%s (%s): after %d bytes, token at %d..%d is still not out", name, l, off, tk.Off, tk.End)
			}
		}
		if pend := s.Pending(); pend > off || (len(s.Tokens) > 0 && pend < int(s.Tokens[len(s.Tokens)-1].End)) {
			t.Fatalf("%s (%s): Pending() = %d after %d bytes, last token ends at %d", name, l, pend, off, s.Tokens[len(s.Tokens)-1].End)
		}
		want := 0
		for want < len(decidedAt) && decidedAt[want]+p.K <= len(s.Tokens) {
			want++
		}
		if len(s.Fingerprints) != want || !slices.Equal(s.Fingerprints, wholeFPs[:want]) {
			t.Fatalf("%s (%s): after %d bytes: %d fingerprints out, the tokens so far determine %d", name, l, off, len(s.Fingerprints), want)
		}
	}
	s.Close()
	if !slices.Equal(s.Tokens, wholeToks) {
		t.Fatalf("%s (%s): streamed tokens differ from the whole text's", name, l)
	}
	d.Close()
	drain()
	if !slices.Equal(dToks, wholeToks) || !slices.Equal(dFPs, wholeFPs) || !slices.Equal(dKGrams, s.KGrams) {
		t.Fatalf("%s (%s): a stream that discards as it goes yields other tokens, fingerprints or k-grams", name, l)
	}
	if !slices.Equal(s.Fingerprints, wholeFPs) {
		t.Fatalf("%s (%s): streamed fingerprints differ from the whole text's", name, l)
	}
	if !slices.Equal(s.Renamed, whole.Renamed) {
		t.Fatalf("%s (%s): streamed rename-robust fingerprints differ from the whole text's", name, l)
	}
	// Every k-gram's hash, in order: the winnowed ones are among them, where they are.
	if want := max(0, len(s.Tokens)-p.K+1); len(s.KGrams) != want {
		t.Fatalf("%s (%s): %d k-gram hashes for %d tokens", name, l, len(s.KGrams), len(s.Tokens))
	}
	for _, f := range s.Fingerprints {
		if s.KGrams[f.Pos] != f.Hash {
			t.Fatalf("%s (%s): fingerprint at %d is not the k-gram hash there", name, l, f.Pos)
		}
	}
}

// TestRenameRobust: consistently renamed code has the same rename-robust
// fingerprints, and other code with the same keywords does not.
func TestRenameRobust(t *testing.T) {
	p := Params{K: 8, W: 5}
	fps := func(src string) []uint64 {
		s := NewStream(DefaultParams, C)
		s.EnableRename(p)
		s.Write([]byte(src))
		s.Close()
		var hs []uint64
		for _, f := range s.Renamed {
			hs = append(hs, f.Hash)
		}
		return hs
	}
	a := fps("static int count_nodes(struct node *head)\n{\n\tint n = 0;\n\twhile (head) {\n\t\tn++;\n\t\thead = head->next;\n\t}\n\treturn n;\n}\n")
	b := fps("static int list_len(struct item *first) { int total = 0; while (first) { total++; first = first->link; } return total; }")
	c := fps("static int sum(int *v, int len) { int s = 0; for (int i = 0; i < len; i++) s += v[i]; return s; }")
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("renamed code has other rename-robust fingerprints: %x vs %x", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("different code has the same rename-robust fingerprints")
	}
}

// checkTokens checks the invariants every token list must keep.
func checkTokens(t *testing.T, l Lang, text []byte, toks []Token, name string) {
	t.Helper()
	prevEnd := int32(0)
	for i, tk := range toks {
		if tk.Off < prevEnd || tk.End <= tk.Off || int(tk.End) > len(text) {
			t.Fatalf("%s (%s): token %d spans %d..%d after a token ending at %d (text %d bytes)", name, l, i, tk.Off, tk.End, prevEnd, len(text))
		}
		if want := int32(1 + bytes.Count(text[:tk.Off], newline)); tk.Line != want {
			t.Fatalf("%s (%s): token %d at %d: line %d, want %d", name, l, i, tk.Off, tk.Line, want)
		}
		prevEnd = tk.End
	}
}

func TestStreamSplitsAdversarial(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, l := range Langs() {
		for trial := 0; trial < 40; trial++ {
			checkSplits(t, rng, l, adversarial(rng, 50+rng.IntN(600)), "generated")
		}
	}
}

// TestStreamSplitsCorpus checks random splits on real source: Go's own tree, and the
// Debian corpora when they are installed.
func TestStreamSplitsCorpus(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var files []string
	roots := []string{filepath.Join(runtime.GOROOT(), "src"), "/usr/share/emacs"}
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if _, ok := LangForPath(trimGz(path)); ok {
					files = append(files, path)
				}
			}
			return nil
		})
	}
	if len(files) == 0 {
		t.Skip("no source trees found")
	}
	n := 300
	if testing.Short() {
		n = 40
	}
	for i := 0; i < n; i++ {
		path := files[rng.IntN(len(files))]
		text, err := readMaybeGz(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(text) > 64<<10 {
			text = text[:64<<10]
		}
		l, _ := LangForPath(trimGz(path))
		checkSplits(t, rng, l, text, path)
		// The same file as a fenced block of a markdown answer.
		md := slices.Concat([]byte("Here you go:\n\n```"+l.String()+"\n"), text, []byte("\n```\nHope this helps.\n"))
		checkSplits(t, rng, Markdown, md, path+" in markdown")
	}
}

func trimGz(p string) string {
	if filepath.Ext(p) == ".gz" {
		return p[:len(p)-3]
	}
	return p
}

func readMaybeGz(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil || filepath.Ext(path) != ".gz" {
		return data, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// TestMarkdownMatchesSource checks that code quoted in a markdown answer tokenizes
// exactly as in its source file, so that its fingerprints can match the index's.
func TestMarkdownMatchesSource(t *testing.T) {
	src := []byte("int add(int a, int b) {\n\t/* sum */\n\treturn a + b; // done\n}\n")
	md := append([]byte("Sure! Here's a function:\n\n```c\n"), src...)
	md = append(md, "```\n\nIt adds two numbers.\n"...)
	want := Tokenize(C, src)
	got := Tokenize(Markdown, md)
	if len(got) < len(want)+5 {
		t.Fatalf("markdown has %d tokens, source %d", len(got), len(want))
	}
	start := bytes.Index(md, []byte("int add"))
	i := slices.IndexFunc(got, func(t Token) bool { return int(t.Off) == start })
	if i < 0 || len(got) < i+len(want) {
		t.Fatalf("code not found among markdown tokens %s", show(string(md), got))
	}
	code := got[i : i+len(want)]
	for i := range want {
		if code[i].Hash != want[i].Hash || code[i].Kind != want[i].Kind {
			t.Fatalf("token %d: markdown %s, source %s", i, show(string(md), code[i:i+1]), show(string(src), want[i:i+1]))
		}
	}
}
