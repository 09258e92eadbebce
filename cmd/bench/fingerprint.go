package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"cleanroom/fingerprint"
)

// piece is how much of a file the fingerprinting figure writes at a time: the
// stream discards its tokens after each piece, so its memory is bounded by the
// window and the piece, not by the largest file.
const piece = 64 << 10

// fingerprinting measures tokenize + hash + winnow over the kernel's .c and .h
// files in memory, on one core and on all, against xxhash64 over the same bytes.
func fingerprinting(c *config, r *report) error {
	t0 := time.Now()
	files, total, err := loadKernel(c.kernel)
	if err != nil {
		return err
	}
	c.files = files
	c.log.Info("kernel loaded", "files", len(files), "MB", total/1e6, "took", time.Since(t0).Round(time.Millisecond))
	cores := runtime.NumCPU()
	var toks, fps atomic.Int64
	var streamBytes atomic.Int64
	// A stream for each worker, reused from batch to batch, as the indexer's are.
	streams := sync.Pool{New: func() any { return fingerprint.NewStream(fingerprint.DefaultParams, fingerprint.C) }}
	fp := func(fs []file) {
		s := streams.Get().(*fingerprint.Stream)
		defer streams.Put(s)
		var nt, nf int64
		for _, f := range fs {
			s.Reset(f.lang)
			for off := 0; off < len(f.data); off += piece {
				s.Write(f.data[off:min(off+piece, len(f.data))])
				nt, nf = nt+int64(len(s.Tokens)), nf+int64(len(s.Fingerprints))
				s.Discard()
			}
			s.Close()
			nt, nf = nt+int64(len(s.Tokens)), nf+int64(len(s.Fingerprints))
			s.Discard()
		}
		toks.Store(nt)
		fps.Store(nf)
		streamBytes.Store(int64(cap(s.Tokens))*int64(unsafe.Sizeof(fingerprint.Token{})) +
			int64(cap(s.Fingerprints))*int64(unsafe.Sizeof(fingerprint.Fingerprint{})))
	}
	hash := func(fs []file) {
		var x uint64
		for _, f := range fs {
			x ^= xxhash.Sum64(f.data)
		}
		sink.Add(x)
	}
	mbps := func(work func([]file), goroutines int) float64 {
		var runs []float64
		for range 5 {
			runtime.GC()
			start := time.Now()
			parallel(files, goroutines, work)
			runs = append(runs, float64(total)/1e6/time.Since(start).Seconds())
		}
		return median(runs)
	}
	fp1 := mbps(fp, 1)
	r.tokens, r.fingerprints = toks.Load(), fps.Load()
	// A fourth one-core pass, profiled, says where the time goes.
	top, err := profiled(c, "fingerprint", func() error { parallel(files, 1, fp); return nil })
	if err != nil {
		return err
	}
	fpN := mbps(fp, cores)
	xx1 := mbps(hash, 1)
	xxN := mbps(hash, cores)
	s := r.section("Fingerprinting", fmt.Sprintf(
		"Tokenize + hash + winnow (k=%d, w=%d) over the kernel's %s .c and .h files (%.2f GB, %s tokens, %s fingerprints), "+
			"held in memory, each file written to one `fingerprint.Stream` in %d KiB pieces that are discarded as they are consumed; "+
			"median of 5 runs. The reference is xxhash64 over the same bytes in the same run. A stream's buffers after the whole kernel: %s "+
			"(memory bounded by the piece and the window, not by the largest file).",
		fingerprint.DefaultParams.K, fingerprint.DefaultParams.W, thousands(int64(len(files))), float64(total)/1e9,
		thousands(r.tokens), thousands(r.fingerprints), piece>>10, kib(streamBytes.Load())))
	s.row("fingerprinting, 1 core", mb(fp1), "xxhash64, 1 core: "+mb(xx1), ">= 250 MB/s", fp1 >= 250, pct(fp1, 250))
	s.row(fmt.Sprintf("fingerprinting, %d cores", cores), mb(fpN), fmt.Sprintf("xxhash64, %d cores: %s", cores, mb(xxN)), ">= 450 MB/s", fpN >= 450, pct(fpN, 450))
	if fp1 < 250 || fpN < 450 {
		s.note("Where the time goes: the lexer's fast path (`lexer.fast`: whitespace, one-byte operators, words hashed " +
			"with xxhash and looked up among the keywords) and the general scanner it falls back to take most of it, appending " +
			"24-byte tokens; winnowing (`Winnower.pushTokens`: the rolling k-gram hash and the window minimum) most of the rest. " +
			"The two-core figure is close to twice the one-core one: the work is per file, with nothing shared.")
		profileNote(s, "CPU profile of a fourth one-core pass", filepath.Join(c.out, "fingerprint.prof"), "go tool pprof -top", top)
	}
	return nil
}

var sink atomic.Uint64

// parallel runs work over files split among n goroutines, each taking the next
// unclaimed batch of files.
func parallel(files []file, n int, work func([]file)) {
	if n == 1 {
		work(files)
		return
	}
	var next atomic.Int64
	const batch = 64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(batch)) - batch
				if i >= len(files) {
					return
				}
				work(files[i:min(i+batch, len(files))])
			}
		}()
	}
	wg.Wait()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// percentile returns the p-th percentile (0-100) of xs, nearest rank.
func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
