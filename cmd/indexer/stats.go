package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"cleanroom/index"
)

// statsJSON is `indexer stats --format json`: the manifest (build, created,
// sources with their versions, repositories, licenses, totals, shards) and what
// follows from it.
type statsJSON struct {
	*index.Manifest
	AgeSeconds int64 `json:"age_seconds"` // since the build
	Threshold  int   `json:"threshold"`   // shared runs of this many tokens are always found
}

func runStats(args []string) int {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	format := fs.String("format", "text", "output format: text or json")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	if fs.NArg() != 1 || (*format != "text" && *format != "json") {
		fmt.Fprintln(os.Stderr, "usage: indexer stats [--format text|json] DIR")
		return 2
	}
	m, err := index.ReadManifest(fs.Arg(0))
	if err != nil {
		return fail("%v", err)
	}
	if *format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(statsJSON{Manifest: m, AgeSeconds: int64(time.Since(m.Created).Seconds()), Threshold: m.Params().Threshold()})
		return 0
	}
	t := m.Totals
	fmt.Printf("index %s\n", fs.Arg(0))
	fmt.Printf("  build:         %s, %s (%s ago)\n", m.Build, m.Created.Format(time.RFC3339), time.Since(m.Created).Round(time.Minute))
	fmt.Printf("  parameters:    k=%d w=%d (guarantee: shared runs of %d tokens), tokenizer v%d, format v%d\n",
		m.K, m.W, m.K+m.W-1, m.Tokenizer, m.Format)
	fmt.Printf("  documents:     %d (%.1f MB of source, %d tokens)\n", t.Docs, float64(t.Bytes)/1e6, t.Tokens)
	fmt.Printf("  fingerprints:  %d\n", t.Postings)
	if rp, ok := m.RenameParams(); ok {
		n := 0
		for _, s := range m.Shards {
			n += s.Renamed
		}
		fmt.Printf("  rename-robust: %d fingerprints, k=%d w=%d (guarantee: %d tokens)\n", n, rp.K, rp.W, rp.Threshold())
	}
	if a := m.Allow; a != nil {
		fmt.Printf("  allow set:     %d fingerprints of %s\n", a.Fingerprints, strings.Join(a.Sources, ", "))
	}
	fmt.Printf("  shards:        %d, %.1f MB on disk (%.1f bytes per fingerprint, %.2f per token)\n", len(m.Shards),
		float64(t.Disk)/1e6, float64(t.Disk)/float64(max(t.Postings, 1)), float64(t.Disk)/float64(max(t.Tokens, 1)))
	fmt.Printf("  repositories:  %d\n", len(m.Repos))
	for _, s := range m.Sources {
		v := s.Version
		if v == "" {
			v = "version unknown"
		}
		fmt.Printf("  source %s (%s, %s): %d files read, %d indexed\n", s.Name, s.Kind, v, s.Files, s.Indexed)
	}
	fmt.Printf("  licenses:\n")
	for _, l := range sortedByCount(m.Licenses) {
		fmt.Printf("    %7d  %s\n", m.Licenses[l], l)
	}
	return 0
}

func runVerify(args []string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: indexer verify DIR\n\nExit status: 0 sound, 1 corrupt, 2 error.")
		return 2
	}
	problems, err := index.Verify(fs.Arg(0))
	if err != nil {
		if errors.Is(err, index.ErrCorrupt) {
			fmt.Fprintf(os.Stderr, "indexer: %v\n", err)
			return 1
		}
		return fail("%v", err)
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "CORRUPT %v\n", p)
	}
	if len(problems) > 0 {
		return 1
	}
	m, _ := index.ReadManifest(fs.Arg(0))
	fmt.Printf("ok: %d shards, %d documents, %d fingerprints, all checksums match\n", len(m.Shards), m.Totals.Docs, m.Totals.Postings)
	return 0
}
