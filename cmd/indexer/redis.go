package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cleanroom/index"
)

// The commands of an index in a Redis Cluster:
//
//	indexer build --index redis://... [--generation G] [--partition I/N] SOURCE...
//	indexer push DIR --index redis://... [--generation G] [--partition I/N]
//	indexer publish --index redis://... --generation G [--partitions N] [--grace D]
//	indexer gc --index redis://... [--drop G]

// partitionFlag parses "I/N".
type partitionFlag struct{ i, n int }

func (p *partitionFlag) String() string { return fmt.Sprintf("%d/%d", p.i, p.n) }

func (p *partitionFlag) Set(s string) error {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return fmt.Errorf("want I/N with 0 <= I < N, e.g. 0/4")
	}
	p.i, p.n = i, n
	return nil
}

// clusterFlags are the flags every Redis command takes.
type clusterFlags struct {
	url, gen  string
	part      partitionFlag
	grace     time.Duration
	noPublish bool
}

func (c *clusterFlags) register(fs *flag.FlagSet, push bool) {
	fs.StringVar(&c.url, "index", "", "the Redis Cluster: redis://HOST:PORT[,HOST:PORT...][/PREFIX] (rediss:// for TLS; password in the URL or $CLEANROOM_REDIS_PASSWORD)")
	fs.StringVar(&c.gen, "generation", "", "generation `name` to write (default: a new one from the time; required with --partition)")
	fs.DurationVar(&c.grace, "grace", time.Hour, "how long the replaced generation stays readable by proxies still using it")
	if push {
		c.part = partitionFlag{0, 1}
		fs.Var(&c.part, "partition", "build slice `I/N` of the sources into the generation; with N > 1, `indexer publish` serves it once all N are done")
		fs.BoolVar(&c.noPublish, "no-publish", false, "write the generation but do not serve it (with N = 1)")
	}
}

// check validates the flags of a push.
func (c *clusterFlags) check() error {
	if !index.IsRedisURL(c.url) {
		return fmt.Errorf("--index %q: want a redis:// or rediss:// URL", c.url)
	}
	if c.gen == "" {
		if c.part.n > 1 {
			return fmt.Errorf("--partition %s: the workers of one build need the same --generation", &c.part)
		}
		c.gen = time.Now().UTC().Format("20060102T150405Z")
	}
	return index.CheckGeneration(c.gen)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// pushDir uploads the local index in dir as the flags say, and publishes the
// generation when it is whole (one partition) unless told not to.
func pushDir(ctx context.Context, w io.Writer, c *clusterFlags, dir string) error {
	ix, err := index.Open(dir, index.OpenOptions{SkipRename: true})
	if err != nil {
		return err
	}
	defer ix.Close()
	r, err := index.DialRedis(ctx, c.url)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := r.Push(ctx, ix, c.gen, c.part.i, c.part.n)
	if err != nil {
		return err
	}
	if st.Complete {
		fmt.Fprintf(w, "partition %s of generation %s was complete already: nothing pushed\n", &c.part, c.gen)
		return nil
	}
	fmt.Fprintf(w, "pushed partition %s of generation %s to %s in %s: %d documents (%.1f MB), %d postings in %d buckets (%d bits)\n",
		&c.part, c.gen, r, st.Elapsed.Round(100*time.Millisecond), st.Docs, float64(st.DocBytes)/1e6, st.Postings, st.Buckets, st.Bits)
	if c.part.n > 1 || c.noPublish {
		fmt.Fprintf(w, "not published: run `indexer publish --index %s --generation %s` once every partition is done\n", c.url, c.gen)
		return nil
	}
	return publish(ctx, w, r, c.gen, 1, c.grace)
}

func publish(ctx context.Context, w io.Writer, r *index.Redis, gen string, parts int, grace time.Duration) error {
	if parts > 0 {
		if err := checkPartitions(ctx, r, gen, parts); err != nil {
			return err
		}
	}
	old, err := r.Publish(ctx, gen, grace)
	if err != nil {
		return err
	}
	if old != "" {
		fmt.Fprintf(w, "generation %s is served; %s is retired and will be deleted after %s\n", gen, old, grace)
	} else {
		fmt.Fprintf(w, "generation %s is served\n", gen)
	}
	return nil
}

// checkPartitions checks that generation gen was cut into parts partitions.
func checkPartitions(ctx context.Context, r *index.Redis, gen string, parts int) error {
	n, err := r.Partitions(ctx, gen)
	if err != nil {
		return err
	}
	if n != parts {
		return fmt.Errorf("generation %s has %d partitions, not %d", gen, n, parts)
	}
	return nil
}

func runPush(args []string) int {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: indexer push DIR --index redis://HOST:PORT[,...][/PREFIX] [flags]\n\nUploads a local index into a Redis Cluster as a generation, and serves it.")
		fs.PrintDefaults()
	}
	var c clusterFlags
	c.register(fs, true)
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	if fs.NArg() != 1 || c.url == "" {
		fs.Usage()
		return 2
	}
	if err := c.check(); err != nil {
		return fail("%v", err)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := pushDir(ctx, os.Stdout, &c, fs.Arg(0)); err != nil {
		return fail("push: %v", err)
	}
	return 0
}

func runPublish(args []string) int {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: indexer publish --index redis://... --generation G [--partitions N] [--grace D]\n\nServes a generation once every partition of it is complete: the proxies follow.")
		fs.PrintDefaults()
	}
	var c clusterFlags
	c.register(fs, false)
	parts := fs.Int("partitions", 0, "fail unless the generation was built in `N` partitions (default: as many as its workers said)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	if c.url == "" || c.gen == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	r, err := index.DialRedis(ctx, c.url)
	if err != nil {
		return fail("%v", err)
	}
	defer r.Close()
	if err = publish(ctx, os.Stdout, r, c.gen, *parts, c.grace); err != nil {
		return fail("publish: %v", err)
	}
	return 0
}

func runGC(args []string) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: indexer gc --index redis://... [--drop G]\n\nDeletes the retired generations whose grace is over, and lists the generations.")
		fs.PrintDefaults()
	}
	url := fs.String("index", "", "the Redis Cluster: redis://HOST:PORT[,HOST:PORT...][/PREFIX]")
	drop := fs.String("drop", "", "also delete generation `G`, which is not served (a build that failed)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	if *url == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	r, err := index.DialRedis(ctx, *url)
	if err != nil {
		return fail("%v", err)
	}
	defer r.Close()
	if *drop != "" {
		if err := r.Drop(ctx, *drop); err != nil {
			return fail("gc: %v", err)
		}
		fmt.Printf("dropped generation %s\n", *drop)
	}
	gone, err := r.GC(ctx, time.Now())
	for _, g := range gone {
		fmt.Printf("deleted retired generation %s\n", g)
	}
	if err != nil {
		return fail("gc: %v", err)
	}
	cur, retired, err := r.Generations(ctx)
	if err != nil {
		return fail("gc: %v", err)
	}
	fmt.Printf("served: %s\n", cmp.Or(cur, "(none)"))
	for g, at := range retired {
		fmt.Printf("retired: %s, deleted after %s\n", g, at.UTC().Format(time.RFC3339))
	}
	return 0
}
