package fingerprint

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// benchCorpus loads up to max bytes of source files under root.
func benchCorpus(b *testing.B, root string, max int) [][]byte {
	var docs [][]byte
	total := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || total >= max || !d.Type().IsRegular() {
			return nil
		}
		if _, ok := LangForPath(path); !ok {
			return nil
		}
		data, err := os.ReadFile(path)
		if err == nil {
			docs = append(docs, data)
			total += len(data)
		}
		return nil
	})
	if len(docs) == 0 {
		b.Skipf("no source under %s", root)
	}
	return docs
}

func corpusRoot() string {
	if r := os.Getenv("CLEANROOM_BENCH_SRC"); r != "" {
		return r
	}
	return filepath.Join(runtime.GOROOT(), "src")
}

func BenchmarkFingerprint(b *testing.B) {
	docs := benchCorpus(b, corpusRoot(), 64<<20)
	var n int64
	for _, d := range docs {
		n += int64(len(d))
	}
	b.ReportAllocs()
	b.SetBytes(n)
	b.ResetTimer()
	s := NewStream(DefaultParams, C)
	for i := 0; i < b.N; i++ {
		for _, d := range docs {
			s.Reset(C) // as the indexer's workers do
			s.Write(d)
			s.Close()
		}
	}
}

func BenchmarkXXHash(b *testing.B) {
	docs := benchCorpus(b, corpusRoot(), 64<<20)
	var n int64
	for _, d := range docs {
		n += int64(len(d))
	}
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, d := range docs {
			xxhash.Sum64(d)
		}
	}
}
