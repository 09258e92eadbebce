package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf16"

	"cleanroom/fingerprint"
	"cleanroom/index"
)

// scanMatch is one match in `indexer scan --format json`.
type scanMatch struct {
	File      string     `json:"file"`
	StartLine int        `json:"start_line"`
	EndLine   int        `json:"end_line"`
	Tokens    int        `json:"tokens"`
	Coverage  float64    `json:"coverage"` // share of the file's tokens the match covers
	Source    scanSource `json:"source"`
	AlsoIn    int        `json:"also_in,omitempty"` // other indexed documents with the same code

	// For SARIF: the columns of the match's first and last line (1-based, in
	// UTF-16 code units, the end exclusive) and its text.
	startCol, endCol int
	text             string
}

type scanSource struct {
	Repo        string `json:"repo"`
	Path        string `json:"path"`
	StartLine   int    `json:"start_line"`
	EndLine     int    `json:"end_line"`
	License     string `json:"license"` // canonical SPDX expression
	LicenseFrom string `json:"license_from"`
	// LicenseAsFound is the expression as the source states it, when that is not
	// canonical ("GPL-2.0+" for GPL-2.0-or-later).
	LicenseAsFound string `json:"license_as_found,omitempty"`
	RepoLicense    string `json:"repo_license,omitempty"`
	Version        string `json:"version,omitempty"`
	URL            string `json:"url,omitempty"`
}

type scanReport struct {
	Matches []scanMatch `json:"matches"`
	Files   int         `json:"files"`
	Errors  []string    `json:"errors,omitempty"`
}

func runScan(args []string) int {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: indexer scan --index DIR [flags] FILE|DIR... | -\n\n"+
			"A directory is scanned for the source files in it (by name) and markdown, skipping dot-directories.\n"+
			"Exit status: 0 nothing matches, 1 something matches, 2 error.")
		fs.PrintDefaults()
	}
	dir := fs.String("index", "", "index `directory`, or the Redis Cluster that holds one: redis://HOST:PORT[,...][/PREFIX] (required)")
	format := fs.String("format", "text", "output format: text, json or sarif (SARIF 2.1.0, for code scanning)")
	filesFrom := fs.String("files-from", "", "read the names of files to scan from `file`, one a line (- for standard input), as well as the arguments")
	lang := fs.String("lang", "", "language of the input (default: by file name; markdown for stdin and unknown names)")
	var mo index.MatchOptions
	fs.IntVar(&mo.MinTokens, "min-tokens", 0, "report matches of at least this many tokens (default: the index's guarantee threshold)")
	fs.IntVar(&mo.MaxPostings, "max-postings", 0, "ignore fingerprints found in more places than this (default 100; -1: no limit)")
	fs.BoolVar(&mo.Rename, "rename", false, "match rename-robustly: code with its identifiers renamed (needs an index built with --rename)")
	fs.BoolVar(&mo.NoAllow, "no-allow", false, "count fingerprints of the index's allow set as evidence too")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	if *dir == "" || (fs.NArg() == 0 && *filesFrom == "") || (*format != "text" && *format != "json" && *format != "sarif") {
		fs.Usage()
		return 2
	}
	var forced *fingerprint.Lang
	if *lang != "" {
		l, ok := fingerprint.LangByName(*lang)
		if !ok {
			return fail("unknown language %q", *lang)
		}
		forced = &l
	}
	ctx, stop := signalContext()
	defer stop()
	ix, err := openStore(ctx, *dir)
	if err != nil {
		return fail("%v", err)
	}
	defer ix.Close()
	if _, ok := ix.RenameParams(); mo.Rename && !ok {
		if index.IsRedisURL(*dir) {
			return fail("an index in a Redis Cluster has no rename-robust fingerprints: scan a local index built with --rename")
		}
		return fail("%s has no rename-robust fingerprints: rebuild it with --rename", *dir)
	}
	if mo.MinTokens > 0 && mo.MinTokens < ix.Params().Threshold() {
		fmt.Fprintf(os.Stderr, "indexer: note: matches shorter than %d tokens are found only by chance (the index guarantees t=%d)\n",
			ix.Params().Threshold(), ix.Params().Threshold())
	}
	rep := scanReport{Matches: []scanMatch{}}
	names, errs := scanNames(fs.Args(), *filesFrom)
	for _, err := range errs {
		rep.Errors = append(rep.Errors, err.Error())
		fmt.Fprintf(os.Stderr, "indexer: %v\n", err)
	}
	for _, name := range names {
		var text []byte
		if name == "-" {
			text, err = io.ReadAll(os.Stdin)
		} else {
			text, err = os.ReadFile(name)
		}
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			fmt.Fprintf(os.Stderr, "indexer: %v\n", err)
			continue
		}
		rep.Files++
		l := fingerprint.Markdown
		if forced != nil {
			l = *forced
		} else if fl, ok := fingerprint.LangForPath(name); ok && name != "-" {
			l = fl
		}
		s := ix.Fingerprint(l, text, mo.Rename)
		m := ix.NewMatcher(mo)
		m.SetContext(ctx)
		m.Feed(s)
		if err := m.Err(); err != nil {
			return fail("%s: %v", name, err)
		}
		for _, x := range m.Matches() {
			rep.Matches = append(rep.Matches, toScanMatch(name, text, len(s.Tokens), &x))
		}
	}
	switch *format {
	case "sarif":
		mf := ix.Meta()
		if err := writeSARIF(os.Stdout, &rep, workingDir(), sarifIndexInfo(mf.Build, mf.Created, mf.Params().Threshold())); err != nil {
			return fail("%v", err)
		}
	case "json":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	default:
		for _, m := range rep.Matches {
			s := m.Source
			fmt.Printf("%s:%d-%d: %d tokens (%.0f%% of the file) match %s %s:%d-%d (%s, from %s)",
				m.File, m.StartLine, m.EndLine, m.Tokens, 100*m.Coverage, s.Repo, s.Path, s.StartLine, s.EndLine, s.License, s.LicenseFrom)
			if m.AlsoIn > 0 {
				fmt.Printf(", also in %d other files", m.AlsoIn)
			}
			fmt.Println()
			if s.URL != "" {
				fmt.Printf("    %s\n", s.URL)
			}
		}
	}
	switch {
	case len(rep.Errors) > 0:
		return 2
	case len(rep.Matches) > 0:
		return 1
	}
	return 0
}

func toScanMatch(file string, text []byte, ntok int, m *index.Match) scanMatch {
	q := m.Query
	return scanMatch{
		startCol: column(text, q.StartOff), endCol: column(text, q.EndOff), text: string(text[q.StartOff:q.EndOff]),
		File: file, StartLine: m.Query.StartLine, EndLine: m.Query.EndLine, Tokens: m.Tokens,
		Coverage: float64(m.Tokens) / float64(max(ntok, 1)), AlsoIn: m.Others,
		Source: scanSource{
			Repo: m.Source.Repo.Name, Path: m.Source.Path, StartLine: m.Src.StartLine, EndLine: m.Src.EndLine,
			License: m.Source.License, LicenseFrom: m.Source.LicenseFrom, LicenseAsFound: m.Source.LicenseAsFound,
			RepoLicense: m.Source.Repo.License, Version: m.Source.Repo.Version, URL: m.URL(),
		},
	}
}

// column returns the 1-based column of byte offset off in text, in UTF-16 code
// units as SARIF counts by default.
func column(text []byte, off int) int {
	start := bytes.LastIndexByte(text[:off], '\n') + 1
	n := 0
	for _, r := range string(text[start:off]) {
		n += max(utf16.RuneLen(r), 1)
	}
	return n + 1
}

// scanNames returns the files to scan: the arguments and the lines of filesFrom,
// with directories replaced by the files in them that scan reads.
func scanNames(args []string, filesFrom string) ([]string, []error) {
	names := slices.Clone(args)
	var errs []error
	if filesFrom != "" {
		var b []byte
		var err error
		if filesFrom == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(filesFrom)
		}
		if err != nil {
			return nil, []error{fmt.Errorf("--files-from: %w", err)}
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSuffix(l, "\r"); strings.TrimSpace(l) != "" {
				names = append(names, l)
			}
		}
	}
	var out []string
	seen := map[string]bool{}
	add := func(name string) {
		if k := filepath.Clean(name); !seen[k] {
			seen[k] = true
			out = append(out, name)
		}
	}
	for _, name := range names {
		if fi, err := os.Stat(name); name == "-" || err != nil || !fi.IsDir() {
			add(name) // reading it reports the error
			continue
		}
		err := filepath.WalkDir(name, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				errs = append(errs, err)
				return nil
			case d.IsDir() && p != name && strings.HasPrefix(d.Name(), "."):
				return filepath.SkipDir
			case d.Type().IsRegular() && scannable(p):
				add(p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errs
}

// scannable reports whether a file found in a directory is scanned: source the
// tokenizer reads, or markdown, whose fenced code is.
func scannable(name string) bool {
	if _, ok := fingerprint.LangForPath(name); ok {
		return true
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".md", ".markdown":
		return true
	}
	return false
}

// openStore opens the index in a directory, or the generation a Redis Cluster
// serves.
func openStore(ctx context.Context, loc string) (index.Store, error) {
	if !index.IsRedisURL(loc) {
		return index.Open(loc, index.OpenOptions{})
	}
	r, err := index.DialRedis(ctx, loc)
	if err != nil {
		return nil, err
	}
	ri, err := r.Open(ctx, "")
	if err != nil {
		r.Close()
		return nil, err
	}
	return &redisStore{ri, r}, nil
}

// redisStore is a generation that closes its connection with it.
type redisStore struct {
	*index.RedisIndex
	r *index.Redis
}

func (s *redisStore) Close() error {
	s.RedisIndex.Close()
	return s.r.Close()
}
