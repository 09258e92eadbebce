package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/index"
)

// lookups measures fingerprint lookups in the kernel index, half of them hashes it
// holds, and whole scans of 2,000-token answers.
func lookups(c *config, r *report) error {
	ix := c.ix
	// The kernel's text (1.2 GB) is not kept for the steps after this one: the
	// gateway is measured with a heap like a deployed proxy's.
	defer func() {
		c.files = nil
		runtime.GC()
	}()
	if c.files == nil {
		files, _, err := loadKernel(c.kernel)
		if err != nil {
			return err
		}
		c.files = files
	}
	// Hashes the index holds: the fingerprints of GPL kernel files.
	var present []uint64
	rng := rand.New(rand.NewPCG(1, 2))
	for len(present) < 1<<16 {
		f := c.files[rng.IntN(len(c.files))]
		_, fps := fingerprint.Fingerprints(ix.Params(), f.lang, f.data)
		for _, fp := range fps {
			if ix.Count(fp.Hash) > 0 {
				present = append(present, fp.Hash)
			}
		}
	}
	hs := make([]uint64, 1<<17)
	for i := range hs {
		if i%2 == 0 {
			hs[i] = present[rng.IntN(len(present))]
		} else {
			hs[i] = rng.Uint64()
		}
	}
	rng.Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
	const n = 1 << 24
	// run returns the wall time per lookup of each goroutine, n lookups apiece.
	run := func(goroutines int) float64 {
		var runs []float64
		for range 5 {
			var wg sync.WaitGroup
			start := time.Now()
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					found := 0
					for i := range n {
						found += ix.Count(hs[(i+g*7919)&(len(hs)-1)])
					}
					sink.Add(uint64(found))
				}()
			}
			wg.Wait()
			runs = append(runs, float64(time.Since(start).Nanoseconds())/float64(n))
		}
		return median(runs)
	}
	ns1 := run(1)
	cores := runtime.NumCPU()
	nsN := run(cores)
	s := r.section("Lookups and scans", fmt.Sprintf(
		"In the kernel index loaded above. A lookup is `Index.Count` of a fingerprint hash: the directory entry of its top bits, then a scan of "+
			"that bucket's low hash bits (some 4 postings; the table is in huge pages); half the hashes are in the index (fingerprints of kernel files), half random; "+
			"%s lookups, median of 5. A scan is `Index.Scan` of a markdown answer: tokenize, fingerprint, look up, extend every hit "+
			"token by token against the index's check values, merge, apply the evidence rules; median of 200.", thousands(n)))
	perCore := 1e9 / ns1
	s.row("lookup, 1 core", fmt.Sprintf("%.0f ns (%.1f M/s)", ns1, perCore/1e6), fmt.Sprintf("%d cores: %.1f M/s in all", cores, 1e9/nsN*float64(cores)/1e6),
		">= 5 M/s per core", perCore >= 5e6, pct(perCore, 5e6))
	// Scans: a kernel function regurgitated, and clean Go code.
	sched, err := kernelFile(c.files, "/kernel/sched/core.c")
	if err != nil {
		return err
	}
	dirty, err := excerpt(fingerprint.C, sched.data, 5000, 2000)
	if err != nil {
		return err
	}
	goText, err := goSource("net/http/server.go")
	if err != nil {
		return err
	}
	clean, err := excerpt(fingerprint.Go, goText, 3000, 2000)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		name, text string
		match      bool
	}{{"kernel/sched/core.c, regurgitated", dirty, true}, {"Go's net/http/server.go, clean", clean, false}} {
		var runs []float64
		var ms []index.Match
		for range 200 {
			start := time.Now()
			ms = ix.Scan(fingerprint.Markdown, []byte(x.text), index.MatchOptions{})
			runs = append(runs, float64(time.Since(start).Nanoseconds()))
		}
		if (len(ms) > 0) != x.match {
			return fmt.Errorf("scan of %s: %d matches", x.name, len(ms))
		}
		toks := len(fingerprint.Tokenize(fingerprint.Markdown, []byte(x.text)))
		med := time.Duration(median(runs))
		s.row(fmt.Sprintf("scan of a %d-token answer: %s", toks, x.name), dur(med), fmt.Sprintf("p99 %s; %d matches reported", dur(time.Duration(percentile(runs, 99))), len(ms)),
			"<= 1 ms", med <= time.Millisecond, over(float64(med), float64(time.Millisecond)))
	}
	runtime.KeepAlive(ix)
	return nil
}
