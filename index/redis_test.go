package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
	"cleanroom/index/redistest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	redistest.Shutdown()
	os.Exit(code)
}

// dialTest connects to the shared test cluster under a prefix of the test's own.
func dialTest(t *testing.T) *Redis {
	t.Helper()
	c := redistest.ForTest(t)
	prefix := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	r, err := DialRedis(context.Background(), "redis://"+strings.Join(c.Addrs[:2], ",")+"/"+prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	// A test starts from nothing, even when run again.
	err = r.w.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		for _, pattern := range []string{prefix + ":*", "{" + prefix + "}:*"} {
			keys, err := c.Keys(ctx, pattern).Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := c.Unlink(ctx, k).Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// buildDocs builds a local index of the texts whose number keep accepts.
func buildDocs(t *testing.T, texts []string, keep func(i int) bool, allow []uint64) *Index {
	t.Helper()
	dir := t.TempDir()
	opts := BuildOptions{Params: fingerprint.DefaultParams, MaxShardPostings: 3000}
	b, err := NewBuilder(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	repo := b.AddRepo(Repo{Name: "gen", License: "GPL-2.0-only", URL: "https://example.org/gen/{path}#L{start}-L{end}"})
	for i, text := range texts {
		if !keep(i) {
			continue
		}
		d := docOf(opts, fingerprint.C, text)
		d.Repo, d.Path, d.License, d.LicenseFrom, d.Lang, d.Size = repo, fmt.Sprintf("src/f%03d.c", i), "GPL-2.0-only", "spdx-line", "c", int64(len(text))
		if err := b.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	if allow != nil {
		b.AddAllow("reference", allow, nil)
	}
	if _, err := b.Finish(nil); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

// redisCorpus is generated C in which one function is copied into 14 files, more
// than a bucket's value holds inline, and one belongs to the allow set.
type redisCorpus struct {
	texts            []string
	common, allowed  string
	allowHashes      []uint64
	queries          []string
	regurgitatedDocs []int
}

func newRedisCorpus() *redisCorpus {
	g := gencode.New(7)
	c := &redisCorpus{common: g.CFunc(10), allowed: g.CFunc(10)}
	for i := range 60 {
		text := g.CFile("// SPDX-License-Identifier: GPL-2.0-only\n", 3+i%4)
		if i%4 == 0 {
			text += "\n" + c.common
		}
		if i == 5 {
			text += "\n" + c.allowed
		}
		c.texts = append(c.texts, text)
	}
	_, fps := fingerprint.Fingerprints(fingerprint.DefaultParams, fingerprint.C, []byte(c.allowed))
	for _, f := range fps {
		c.allowHashes = append(c.allowHashes, f.Hash)
	}
	for _, d := range []int{3, 17, 42, 59} {
		c.queries = append(c.queries, "Here you go:\n\n```c\n"+reindent(lines(c.texts[d], 8, 30))+"```\n")
		c.regurgitatedDocs = append(c.regurgitatedDocs, d)
	}
	c.queries = append(c.queries,
		"```c\n"+c.common+"```\n",  // in 15 files
		"```c\n"+c.allowed+"```\n", // allowed
		"```c\n"+g.CFile("", 4)+"```\n",
		"Nothing to see here: prose only, about lists and trees.\n")
	return c
}

// byPath renders matches by source path, for indexes whose document numbers differ.
func byPath(ms []Match) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s %s %d-%d %s %v %v %d %d %d\n", m.Source.Repo.Name, m.Source.Path, m.Src.StartLine, m.Src.EndLine,
			m.Source.License, m.Query, Range{Start: m.Src.Start, End: m.Src.End}, m.Tokens, m.Runs, m.Others)
	}
	return b.String()
}

func TestRedisIndexMatchesLocal(t *testing.T) {
	r := dialTest(t)
	ctx := context.Background()
	c := newRedisCorpus()
	local := buildDocs(t, c.texts, func(int) bool { return true }, c.allowHashes)
	if _, err := r.Open(ctx, ""); !errors.Is(err, ErrNoGeneration) {
		t.Fatalf("Open of an empty cluster: %v, want ErrNoGeneration", err)
	}
	st, err := r.Push(ctx, local, "g1", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Postings != int64(local.NumPostings()) || st.Docs != int64(local.NumDocs()) {
		t.Errorf("pushed %d postings of %d docs, want %d of %d", st.Postings, st.Docs, local.NumPostings(), local.NumDocs())
	}
	if _, err := r.Open(ctx, "g1"); err == nil {
		t.Fatal("an unpublished generation opened")
	}
	if old, err := r.Publish(ctx, "g1", time.Hour); err != nil || old != "" {
		t.Fatalf("Publish: %q %v", old, err)
	}
	ri, err := r.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ri.Close()
	// Every bucket is a listpack (a hash table would cost 5 times the memory): the
	// buckets are even, and no value outgrows the listpack.
	for b := range uint64(1) << ri.layout.Bits {
		if enc, err := r.w.ObjectEncoding(ctx, r.bucketKey("g1", b)).Result(); err != nil || enc != "listpack" {
			t.Fatalf("bucket %d: encoding %q %v, want listpack", b, enc, err)
		}
	}
	if ri.Generation() != "g1" || ri.NumDocs() != local.NumDocs() || ri.NumPostings() != local.NumPostings() || ri.Params() != local.Params() {
		t.Errorf("opened %s: %d docs %d postings %v", ri.Generation(), ri.NumDocs(), ri.NumPostings(), ri.Params())
	}
	for i, q := range c.queries {
		for _, opts := range []MatchOptions{{}, {MaxPostings: -1}, {NoAllow: true}, {MaxPostings: 5}} {
			want := local.Scan(fingerprint.Markdown, []byte(q), opts)
			got, err := ri.ScanContext(ctx, fingerprint.Markdown, []byte(q), opts)
			if err != nil {
				t.Fatal(err)
			}
			if summary(got) != summary(want) {
				t.Errorf("query %d %+v:\nredis:\n%slocal:\n%s", i, opts, summary(got), summary(want))
			}
			if i < len(c.regurgitatedDocs) && (len(got) != 1 || got[0].Doc != c.regurgitatedDocs[i]) {
				t.Errorf("query %d: %s, want document %d", i, summary(got), c.regurgitatedDocs[i])
			}
		}
	}
	// The copied function: 15 postings, over the inline limit, found through the
	// overflow hash.
	ms, _ := ri.ScanContext(ctx, fingerprint.Markdown, []byte(c.queries[4]), MatchOptions{})
	if len(ms) != 1 || ms[0].Others != 14 {
		t.Errorf("common function: %s, want one match and 14 others", summary(ms))
	}
	if ms, _ := ri.ScanContext(ctx, fingerprint.Markdown, []byte(c.queries[4]), MatchOptions{MaxPostings: 10}); len(ms) != 0 {
		t.Errorf("common function with MaxPostings 10: %s, want none", summary(ms))
	}
	// Streaming: a Matcher fed piece by piece finds what Scan finds.
	m := ri.NewMatcher(MatchOptions{})
	s := fingerprint.NewStream(ri.Params(), fingerprint.Markdown)
	q := c.queries[1]
	for i := 0; i < len(q); i += 37 {
		s.Write([]byte(q[i:min(i+37, len(q))]))
		m.Feed(s)
	}
	s.Close()
	m.Feed(s)
	if want := local.Scan(fingerprint.Markdown, []byte(q), MatchOptions{}); m.Err() != nil || summary(m.Matches()) != summary(want) {
		t.Errorf("streamed: %v\n%s, want\n%s", m.Err(), summary(m.Matches()), summary(want))
	}
	if _, err := ri.ScanContext(ctx, fingerprint.C, []byte(c.texts[0]), MatchOptions{Rename: true}); err == nil {
		t.Error("a rename-robust scan of a redis index did not fail")
	}
}

// TestRedisPartitionsAndGenerations: three workers push a generation's partitions at
// once; it is served only once all are complete; the generation it replaces is
// deleted after its grace.
func TestRedisPartitionsAndGenerations(t *testing.T) {
	r := dialTest(t)
	ctx := context.Background()
	c := newRedisCorpus()
	whole := buildDocs(t, c.texts, func(int) bool { return true }, c.allowHashes)
	if _, err := r.Push(ctx, whole, "old", 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ctx, "old", time.Minute); err != nil {
		t.Fatal(err)
	}
	const parts = 3
	var allow []uint64
	slices := make([]*Index, parts)
	for p := range parts {
		if p == 0 {
			allow = c.allowHashes
		} else {
			allow = nil
		}
		slices[p] = buildDocs(t, c.texts, func(i int) bool { return i%parts == p }, allow)
	}
	// Partitions 0 and 2 finish; 1 fails (it never runs): nothing is served.
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for _, p := range []int{0, 2} {
		wg.Go(func() { _, errs[p] = r.Push(ctx, slices[p], "new", p, parts) })
	}
	wg.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Fatal(errs)
	}
	if _, err := r.Publish(ctx, "new", time.Minute); err == nil || !strings.Contains(err.Error(), "partitions 1 of 3") {
		t.Fatalf("Publish with a partition missing: %v", err)
	}
	if cur, _ := r.Current(ctx); cur != "old" {
		t.Fatalf("current %q after a failed publish, want old", cur)
	}
	if st, err := r.Push(ctx, slices[2], "new", 2, parts); err != nil || !st.Complete || st.Postings != 0 {
		t.Errorf("a complete partition pushed again: %+v %v, want nothing done", st, err)
	}
	if _, err := r.Push(ctx, slices[1], "new", 1, 4); !errors.Is(err, ErrParams) {
		t.Errorf("a partition of another layout: %v, want ErrParams", err)
	}
	if _, err := r.Push(ctx, slices[1], "new", 1, parts); err != nil {
		t.Fatal(err)
	}
	if old, err := r.Publish(ctx, "new", time.Minute); err != nil || old != "old" {
		t.Fatalf("Publish: %q %v", old, err)
	}
	ri, err := r.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if ri.Generation() != "new" || ri.NumDocs() != whole.NumDocs() || ri.NumPostings() != whole.NumPostings() {
		t.Errorf("published %s: %d docs, %d postings, want %d and %d", ri.Generation(), ri.NumDocs(), ri.NumPostings(), whole.NumDocs(), whole.NumPostings())
	}
	for i, q := range c.queries {
		want := whole.Scan(fingerprint.Markdown, []byte(q), MatchOptions{})
		got, err := ri.ScanContext(ctx, fingerprint.Markdown, []byte(q), MatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Document numbers differ; where the matches are from does not. Of
		// copies in several files, which one is named depends on the numbering.
		if i != 4 && byPath(got) != byPath(want) {
			t.Errorf("query %d:\npartitioned:\n%swhole:\n%s", i, byPath(got), byPath(want))
		}
		if i == 4 && (len(got) != 1 || got[0].Others != 14) {
			t.Errorf("common function across partitions: %s", byPath(got))
		}
	}
	// "old" is retired; within its grace it still opens (proxies finishing requests).
	_, retired, _ := r.Generations(ctx)
	if _, ok := retired["old"]; !ok {
		t.Fatalf("retired: %v", retired)
	}
	oldIx, err := r.Open(ctx, "old")
	if err != nil {
		t.Fatalf("a retired generation within its grace: %v", err)
	}
	oldIx.Close()
	if gone, err := r.GC(ctx, time.Now()); err != nil || len(gone) != 0 {
		t.Fatalf("GC within the grace: %v %v", gone, err)
	}
	if gone, err := r.GC(ctx, time.Now().Add(2*time.Minute)); err != nil || len(gone) != 1 {
		t.Fatalf("GC after the grace: %v %v", gone, err)
	}
	if n := countKeys(t, r, r.prefix+":g:old:*"); n != 0 {
		t.Errorf("%d keys of the dropped generation are left", n)
	}
	if n := countKeys(t, r, r.prefix+":g:new:*"); n == 0 {
		t.Error("the served generation's keys are gone")
	}
	if err := r.Drop(ctx, "new"); err == nil {
		t.Error("Drop of the served generation did not fail")
	}
}

// countKeys counts the keys matching pattern on every primary.
func countKeys(t *testing.T, r *Redis, pattern string) int {
	var mu sync.Mutex
	n := 0
	err := r.w.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, pattern).Result()
		mu.Lock()
		n += len(keys)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRedisPushRetry: a partition pushed again after a crash (its marker never
// written) counts each posting once.
func TestRedisPushRetry(t *testing.T) {
	r := dialTest(t)
	ctx := context.Background()
	c := newRedisCorpus()
	local := buildDocs(t, c.texts, func(int) bool { return true }, nil)
	for range 2 {
		if _, err := r.Push(ctx, local, "g", 0, 1); err != nil {
			t.Fatal(err)
		}
		r.w.Del(ctx, r.genKey("g", "part:0")) // as if it crashed before its marker
	}
	if _, err := r.Publish(ctx, "g", 0); err == nil {
		t.Fatal("published without the partition's marker")
	}
	ri := publishLocal(t, r, local, "g")
	q := []byte("```c\n" + c.common + "```\n")
	want := local.Scan(fingerprint.Markdown, q, MatchOptions{MaxPostings: 15})
	got, _ := ri.ScanContext(ctx, fingerprint.Markdown, q, MatchOptions{MaxPostings: 15})
	if len(want) != 1 || summary(got) != summary(want) {
		t.Errorf("after three pushes, with 15 postings allowed:\n%swant\n%s", summary(got), summary(want))
	}
}

// publishLocal pushes a local index whole as generation gen, serves it and opens it.
func publishLocal(t *testing.T, r *Redis, local *Index, gen string) *RedisIndex {
	t.Helper()
	ctx := context.Background()
	if _, err := r.Push(ctx, local, gen, 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ctx, gen, 0); err != nil {
		t.Fatal(err)
	}
	ri, err := r.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ri.Close() })
	return ri
}

// TestRedisLookupErrors: a cluster that cannot be reached is an error of the
// Matcher, not a clean answer.
func TestRedisLookupErrors(t *testing.T) {
	r := dialTest(t)
	ctx := context.Background()
	c := newRedisCorpus()
	local := buildDocs(t, c.texts, func(int) bool { return true }, nil)
	ri := publishLocal(t, r, local, "g")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ri.ScanContext(cctx, fingerprint.Markdown, []byte(c.queries[0]), MatchOptions{}); err == nil {
		t.Error("a lookup under a canceled context succeeded")
	}
	r.Close()
	m := ri.NewMatcher(MatchOptions{})
	m.Feed(ri.Fingerprint(fingerprint.Markdown, []byte(c.queries[0]), false))
	if m.Err() == nil || len(m.Matches()) != 0 {
		t.Errorf("closed client: err %v, %d matches", m.Err(), len(m.Matches()))
	}
	for _, bad := range []string{"http://x:1", "redis://", "redis://host", "redis://h:1/a:b"} {
		if _, err := DialRedis(ctx, bad); err == nil {
			t.Errorf("DialRedis(%q) did not fail", bad)
		}
	}
}
