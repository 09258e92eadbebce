package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"cleanroom/corpus"
	"cleanroom/corpus/build"
	"cleanroom/corpus/license"
	"cleanroom/fingerprint"
)

func runBuild(args []string) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: indexer build --out DIR [flags] SOURCE...\n       indexer build --index redis://HOST:PORT[,...][/PREFIX] [--generation G] [--partition I/N] [flags] SOURCE...")
		fs.PrintDefaults()
	}
	var opts build.Options
	fs.StringVar(&opts.Out, "out", "", "index `directory` to write (required without --index; with it, where the partition is built before it is pushed: default a temporary directory)")
	var cluster clusterFlags
	cluster.register(fs, true)
	fs.IntVar(&opts.Params.K, "k", fingerprint.DefaultParams.K, "tokens per k-gram")
	fs.IntVar(&opts.Params.W, "w", fingerprint.DefaultParams.W, "k-grams per winnowing window")
	fs.IntVar(&opts.Workers, "workers", 0, "fingerprinting goroutines (default: one per core)")
	rename := fs.Bool("rename", false, "also store rename-robust fingerprints, for `scan --rename`")
	fs.IntVar(&opts.KGramBits, "kgram-bits", 8, "bits per k-gram of the filter of all k-grams that shortens the proxy's holdback; 0 for none")
	fs.IntVar(&opts.Rename.K, "rename-k", fingerprint.DefaultRenameParams.K, "tokens per k-gram of the rename-robust fingerprints")
	fs.IntVar(&opts.Rename.W, "rename-w", fingerprint.DefaultRenameParams.W, "k-grams per window of the rename-robust fingerprints")
	fs.Func("allow", "a `SOURCE` of permissive reference code whose fingerprints are boilerplate, not evidence (repeatable)", func(s string) error {
		opts.Allow = append(opts.Allow, s)
		return nil
	})
	fs.IntVar(&opts.Index.MaxShardPostings, "shard-postings", 8<<20, "postings per shard, at most")
	quiet := fs.Bool("quiet", false, "no progress output")
	memLimit := fs.Int64("memory-limit", 1536, "soft limit of the heap, in MiB, that the garbage collector keeps to (GOMEMLIMIT overrides it); 0 for none")
	opts.Walk.Flags(fs)
	pol := license.DefaultPolicy()
	pol.Flags(fs) // -policy FILE and the flags after it apply in order
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	toRedis := cluster.url != ""
	if (opts.Out == "" && !toRedis) || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if toRedis {
		if err := cluster.check(); err != nil {
			return fail("%v", err)
		}
		// The filter of all k-grams is for an index on one machine.
		opts.KGramBits = 0
		opts.Partition, opts.Partitions = cluster.part.i, cluster.part.n
		if opts.Out == "" {
			tmp, err := os.MkdirTemp("", "cleanroom-partition-")
			if err != nil {
				return fail("%v", err)
			}
			defer os.RemoveAll(tmp)
			opts.Out = tmp
		}
	}
	if !*rename {
		opts.Rename = fingerprint.Params{}
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && *memLimit > 0 {
		// The build holds a shard while the last one is written; without a limit the
		// collector lets the heap double, and the whole kernel would take 2.4 GB.
		debug.SetMemoryLimit(*memLimit << 20)
	}
	opts.Policy = pol
	interactive := term.IsTerminal(int(os.Stderr.Fd())) && !*quiet
	logLevel := slog.LevelInfo
	if interactive || *quiet {
		logLevel = slog.LevelWarn // the bar says it all
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))

	b, err := build.New(opts, fs.Args())
	if err != nil {
		return fail("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		switch {
		case *quiet:
			<-done
		case interactive:
			showBar(b, done)
		default:
			logProgress(b, opts.Log, done)
		}
	}()
	sum, err := b.Run(ctx)
	close(done)
	<-finished
	if err != nil {
		return fail("build failed: %v", err)
	}
	printSummary(os.Stdout, opts.Out, sum)
	if toRedis {
		if err := pushDir(ctx, os.Stdout, &cluster, opts.Out); err != nil {
			return fail("push: %v", err)
		}
	}
	return 0
}

// reorder moves flags after positional arguments to the front, so that
// "indexer build SRC --out DIR" works as users expect.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	return append(flags, pos...)
}

func showBar(b *build.Builder, done chan struct{}) {
	p := b.Progress()
	bar := progressbar.NewOptions64(p.Total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionClearOnFinish(),
	)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		p := b.Progress()
		bar.Describe(fmt.Sprintf("%s: %d files, %d MB", p.Source, p.Files, p.Bytes>>20))
		bar.Set64(p.Read)
		select {
		case <-done:
			bar.Finish()
			return
		case <-tick.C:
		}
	}
}

func logProgress(b *build.Builder, log *slog.Logger, done chan struct{}) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		p := b.Progress()
		secs := p.Elapsed.Seconds()
		eta := "?"
		if p.Read > 0 && p.Total > p.Read {
			eta = (time.Duration(secs*float64(p.Total-p.Read)/float64(p.Read)) * time.Second).Round(time.Second).String()
		}
		log.Info("progress", "source", p.Source, "files", p.Files, "MB", p.Bytes>>20,
			"MB/s", fmt.Sprintf("%.1f", float64(p.Bytes)/1e6/secs),
			"read", fmt.Sprintf("%d%%", 100*p.Read/max(p.Total, 1)), "eta", eta)
	}
}

func printSummary(w io.Writer, dir string, s *build.Summary) {
	m := s.Manifest
	t := m.Totals
	fmt.Fprintf(w, "index %s built in %s (build %s)\n", dir, s.Elapsed.Round(100*time.Millisecond), m.Build)
	fmt.Fprintf(w, "  read:        %d files, %.1f MB of source\n", s.Files, float64(s.Bytes)/1e6)
	fmt.Fprintf(w, "  indexed:     %d documents, %.1f MB, %d tokens\n", t.Docs, float64(t.Bytes)/1e6, t.Tokens)
	fmt.Fprintf(w, "  fingerprints: %d (k=%d w=%d: every shared run of %d tokens is found)\n", t.Postings, m.K, m.W, m.K+m.W-1)
	if rp, ok := m.RenameParams(); ok {
		n := 0
		for _, s := range m.Shards {
			n += s.Renamed
		}
		fmt.Fprintf(w, "  rename-robust: %d (%v)\n", n, rp)
	}
	if a := m.Allow; a != nil {
		fmt.Fprintf(w, "  allow set:   %d fingerprints of %s\n", a.Fingerprints, strings.Join(a.Sources, ", "))
	}
	fmt.Fprintf(w, "  on disk:     %.1f MB in %d shards (%.1f bytes per fingerprint)\n", float64(t.Disk)/1e6, len(m.Shards),
		float64(t.Disk)/float64(max(t.Postings, 1)))
	fmt.Fprintf(w, "  licenses of files read:\n")
	for _, l := range sortedByCount(s.Licenses) {
		fmt.Fprintf(w, "    %7d  %s\n", s.Licenses[l], l)
	}
	if len(s.Excluded) > 0 {
		fmt.Fprintf(w, "  not indexed, by license class:\n")
		for _, c := range sortedByCount(s.Excluded) {
			fmt.Fprintf(w, "    %7d  %s\n", s.Excluded[c], c)
		}
	}
	if s.Generated > 0 || s.Skipped[corpus.SkipGenerated] > 0 {
		fmt.Fprintf(w, "  generated:   %d files with a copyleft notice read (%d indexed), %d without one skipped\n",
			s.Generated, s.GeneratedIndexed, s.Skipped[corpus.SkipGenerated])
	}
	if len(s.Skipped) > 0 {
		fmt.Fprintf(w, "  files skipped, by reason:\n")
		for _, r := range sortedByCount(s.Skipped) {
			fmt.Fprintf(w, "    %7d  %s\n", s.Skipped[r], r)
		}
	}
}

// sortedByCount returns the keys of m, largest count first.
func sortedByCount[V int | int64](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return keys
}
