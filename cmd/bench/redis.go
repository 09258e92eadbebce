package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/index"
	"cleanroom/index/redistest"
	"cleanroom/proxy"
)

// redisCluster measures the kernel index in a Redis Cluster against the local
// shards, in one run: memory per fingerprint (INFO memory, MEMORY USAGE), the push,
// and the lookup latency per response (a whole scan: tokenize, fingerprint, look
// up, verify) of regurgitated and clean answers.
func redisCluster(c *config, r *report) error {
	ctx := context.Background()
	dir := filepath.Join(c.out, "redis")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cl, err := redistest.Start(ctx, dir)
	if err != nil {
		return fmt.Errorf("starting a Redis Cluster: %w", err)
	}
	defer func() {
		cl.Stop()
		os.RemoveAll(dir)
	}()
	rd, err := index.DialRedis(ctx, "redis://"+strings.Join(cl.Addrs, ",")+"/bench")
	if err != nil {
		return err
	}
	defer rd.Close()
	before, err := rd.MemoryStats(ctx)
	if err != nil {
		return err
	}
	ix := c.ix
	st, err := rd.Push(ctx, ix, "kernel", 0, 1)
	if err != nil {
		return err
	}
	c.log.Info("pushed", "took", st.Elapsed, "postings", st.Postings, "docs", st.Docs)
	if _, err := rd.Publish(ctx, "kernel", time.Hour); err != nil {
		return err
	}
	after, err := rd.MemoryStats(ctx)
	if err != nil {
		return err
	}
	buckets, nb, err := rd.BucketMemory(ctx, "kernel", 4096)
	if err != nil {
		return err
	}
	fps := float64(ix.NumPostings())
	all := float64(after - before)
	localFP := float64(ix.PostingBytes()) / fps
	localAll := float64(ix.Manifest.Totals.Disk) / fps
	s := r.section("Index in a Redis Cluster", fmt.Sprintf(
		"The kernel index above pushed into a real Redis Cluster on this machine (Debian's redis-server %s, three primaries and three replicas, "+
			"index/redistest) with `Redis.Push`: %s fingerprints in %s buckets of 2^%d (Redis hashes in listpack encoding, a fingerprint's low 32 bits "+
			"for its field and its postings, 7 bytes each, for its value), and %s documents (their token checks and line tables). Memory is "+
			"`used_memory` of `INFO memory` summed over the primaries, before and after the push (the replicas hold as much again); the "+
			"fingerprints' share is `MEMORY USAGE` of 4,096 buckets, scaled to all.",
		redisVersion(), thousands(int64(fps)), thousands(int64(nb)), st.Bits, thousands(st.Docs)))
	s.row("memory per fingerprint: buckets", fmt.Sprintf("%.1f B", float64(buckets)/fps), fmt.Sprintf("local shards loaded: %.1f B", localFP),
		"", false, "")
	s.row("memory per fingerprint: all (buckets and documents)", fmt.Sprintf("%.1f B (%.2f GB on the primaries)", all/fps, all/1e9),
		fmt.Sprintf("local shards on disk: %.1f B", localAll), "", false, "")
	s.row("push of the whole index", dur(st.Elapsed), fmt.Sprintf("%s of documents; %.1f M postings/s", fmt.Sprintf("%.0f MB", float64(st.DocBytes)/1e6), fps/st.Elapsed.Seconds()/1e6), "", false, "")

	// Lookup latency per response, local and in the cluster.
	if c.files == nil {
		files, _, err := loadKernel(c.kernel)
		if err != nil {
			return err
		}
		c.files = files
		defer func() { c.files = nil; runtime.GC() }()
	}
	goText, err := goSource("net/http/server.go")
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var dirty, clean []string
	for len(dirty) < 100 {
		f := c.files[rng.IntN(len(c.files))]
		text, err := excerpt(f.lang, f.data, 0, 500)
		if err == nil && len(ix.Scan(fingerprint.Markdown, []byte(text), index.MatchOptions{})) > 0 {
			dirty = append(dirty, text)
		}
	}
	for i := 0; len(clean) < 100; i++ {
		text, err := excerpt(fingerprint.Go, goText, 150*i, 500)
		if err != nil {
			return err
		}
		clean = append(clean, text)
	}
	ri, err := rd.Open(ctx, "")
	if err != nil {
		return err
	}
	defer ri.Close()
	stores := []struct {
		name string
		s    index.Store
	}{{"local shards", ix}, {"Redis Cluster, first sight of each document", ri}, {"Redis Cluster, documents cached", ri}}
	for _, set := range []struct {
		name  string
		texts []string
	}{{"regurgitated kernel code", dirty}, {"clean Go code", clean}} {
		var cells []string
		var p50s []time.Duration
		for _, st := range stores {
			var runs []float64
			for _, text := range set.texts {
				start := time.Now()
				ms, err := st.s.ScanContext(ctx, fingerprint.Markdown, []byte(text), index.MatchOptions{})
				if err != nil {
					return err
				}
				runs = append(runs, float64(time.Since(start).Nanoseconds()))
				if (len(ms) > 0) != (set.name == "regurgitated kernel code") {
					return fmt.Errorf("%s on %s: %d matches", set.name, st.name, len(ms))
				}
			}
			p50 := time.Duration(median(runs))
			p50s = append(p50s, p50)
			cells = append(cells, fmt.Sprintf("%s: p50 %s, p99 %s", st.name, dur(p50), dur(time.Duration(percentile(runs, 99)))))
		}
		s.row("lookup per 500-token response, "+set.name, cells[2], cells[0]+"; "+cells[1], "", false, "")
	}
	// The kernel's text (1.2 GB) is not kept while the proxies run: their heaps
	// should be a deployed proxy's.
	c.files, dirty, clean = nil, nil, nil
	runtime.GC()
	if err := redisGateway(c, s, "redis://"+strings.Join(cl.Addrs, ",")+"/bench"); err != nil {
		return err
	}
	s.notes = append(s.notes, "A response's fingerprints are one pipelined HMGET per bucket they fall in: one round trip to each node that holds any; "+
		"the documents their postings point into are a second round trip the first time a proxy sees them, then come from its cache "+
		"(`--index-cache-mb`). A clean response finds no postings and makes only the first.")
	return nil
}

func redisVersion() string {
	out, err := execOutput("redis-server", "--version")
	if err != nil {
		return "?"
	}
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return "?"
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

// redisGateway puts cleanroom in block mode in front of the gateway step's upstream
// (a clean 2,000-token answer), once on the local shards and once on the cluster,
// and compares time to first byte at a model's pace and completions per second.
func redisGateway(c *config, s *section, redisURL string) error {
	src, err := goSource("net/http/server.go")
	if err != nil {
		return err
	}
	content, err := excerpt(fingerprint.Go, src, 3000, 2000)
	if err != nil {
		return err
	}
	up := httptest.NewServer(newFastUpstream(content))
	defer up.Close()
	var ts []*target
	for _, loc := range []struct{ name, index string }{{"local shards", c.index}, {"Redis Cluster", redisURL}} {
		px, err := proxy.New(proxy.Options{Index: loc.index, Upstream: up.URL, Mode: "block", AuditLog: os.DevNull},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return err
		}
		hs := httptest.NewServer(px.Handler())
		defer func() { hs.Close(); px.Close() }()
		t := &target{name: loc.name, url: hs.URL, client: newClient()}
		if _, body, err := t.complete(false); err != nil || contentOf(body) != content {
			return fmt.Errorf("cleanroom on %s changed the content (%v)", loc.name, err)
		}
		ts = append(ts, t)
	}
	ttfb := map[string][]float64{}
	thr := map[string][]float64{}
	for round := range 4 {
		for i := range ts {
			t := ts[(i+round)%len(ts)]
			var tt []float64
			for range 50 {
				d, _, err := t.request(false, true)
				if err != nil {
					return err
				}
				tt = append(tt, float64(d.Nanoseconds()))
			}
			n, err := load(t, 8, time.Second)
			if err != nil {
				return err
			}
			if round > 0 {
				ttfb[t.name] = append(ttfb[t.name], tt...)
				thr[t.name] = append(thr[t.name], n)
			}
		}
	}
	ms := func(v []float64, p float64) string { return fmt.Sprintf("%.3f ms", percentile(v, p)/1e6) }
	l, rc := ttfb["local shards"], ttfb["Redis Cluster"]
	s.row("proxy in block mode: time to first byte, paced upstream", fmt.Sprintf("p50 %s, p99 %s", ms(rc, 50), ms(rc, 99)),
		fmt.Sprintf("local shards: p50 %s, p99 %s", ms(l, 50), ms(l, 99)), "", false, "")
	tl, tr := median(thr["local shards"]), median(thr["Redis Cluster"])
	s.row("proxy in block mode: completions/s, 8 clients", fmt.Sprintf("%.0f (%.2fx)", tr, tr/tl),
		fmt.Sprintf("local shards: %.0f", tl), "", false, "")
	return nil
}
