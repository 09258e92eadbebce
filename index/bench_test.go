package index

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"cleanroom/fingerprint"
)

// benchIndex opens the index CLEANROOM_BENCH_INDEX names (a kernel index, say) or
// builds one of generated code.
func benchIndex(b *testing.B) (*Index, []string) {
	if dir := os.Getenv("CLEANROOM_BENCH_INDEX"); dir != "" {
		ix, err := Open(dir, OpenOptions{SkipRename: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ix.Close() })
		return ix, nil
	}
	c := buildCorpus(b, 400, BuildOptions{})
	return c.ix, c.files
}

// BenchmarkLookup looks up fingerprint hashes, half of them in the index.
func BenchmarkLookup(b *testing.B) {
	ix, _ := benchIndex(b)
	rng := rand.New(rand.NewPCG(1, 2))
	hs := make([]uint64, 1<<16)
	for i := range hs {
		if i%2 == 0 {
			// A hash of the table: rebuild it from a posting's bucket and low bits.
			e := rng.IntN(ix.exact.n)
			b := 0
			for int(ix.exact.dir[b+1]) <= e {
				b++
			}
			hs[i] = uint64(b)<<ix.exact.shift | uint64(ix.exact.lows[e])
		} else {
			hs[i] = rng.Uint64()
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	found := 0
	for i := 0; i < b.N; i++ {
		lo, hi := ix.exact.lookup(hs[i&(len(hs)-1)])
		found += hi - lo
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
	b.ReportMetric(float64(ix.PostingBytes())/float64(ix.NumPostings()), "bytes/fingerprint")
	if found == 0 {
		b.Fatal("no lookup found anything")
	}
}

// BenchmarkScan2000 scans a markdown answer of about 2,000 tokens that quotes
// indexed code: fingerprinting, lookups, extension, merging.
func BenchmarkScan2000(b *testing.B) {
	ix, files := benchIndex(b)
	if files == nil {
		b.Skip("needs the generated index (unset CLEANROOM_BENCH_INDEX)")
	}
	var text strings.Builder
	text.WriteString("Here is how it is done:\n\n```c\n")
	for _, f := range files[:3] {
		text.WriteString(f)
	}
	text.WriteString("```\n")
	toks := fingerprint.Tokenize(fingerprint.Markdown, []byte(text.String()))
	if len(toks) < 1500 {
		b.Fatalf("only %d tokens", len(toks))
	}
	answer := []byte(text.String()[:toks[min(2000, len(toks)-1)].Off])
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(ix.Scan(fingerprint.Markdown, answer, MatchOptions{})) == 0 {
			b.Fatal("no match")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/scan")
}

// BenchmarkKGramFilter asks the k-gram filter about random k-grams, as the proxy
// does for every token it holds back: a cache miss each on a kernel-sized filter.
func BenchmarkKGramFilter(b *testing.B) {
	ix, _ := benchIndex(b)
	if !ix.HasKGramFilter() {
		b.Skip("the index has no k-gram filter")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	hs := make([]uint64, 1<<16)
	for i := range hs {
		hs[i] = rng.Uint64()
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		if ix.MayHaveKGram(hs[i&(len(hs)-1)]) {
			n++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/k-gram")
	b.ReportMetric(float64(n)/float64(b.N)*100, "%positive")
}
