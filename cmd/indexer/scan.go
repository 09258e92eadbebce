package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

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
}

type scanSource struct {
	Repo        string `json:"repo"`
	Path        string `json:"path"`
	StartLine   int    `json:"start_line"`
	EndLine     int    `json:"end_line"`
	License     string `json:"license"`
	LicenseFrom string `json:"license_from"`
	RepoLicense string `json:"repo_license,omitempty"`
	Version     string `json:"version,omitempty"`
	URL         string `json:"url,omitempty"`
}

type scanReport struct {
	Matches []scanMatch `json:"matches"`
	Files   int         `json:"files"`
	Errors  []string    `json:"errors,omitempty"`
}

func runScan(args []string) int {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: indexer scan --index DIR [flags] FILE... | -\n\nExit status: 0 nothing matches, 1 something matches, 2 error.")
		fs.PrintDefaults()
	}
	dir := fs.String("index", "", "index `directory` (required)")
	format := fs.String("format", "text", "output format: text or json")
	lang := fs.String("lang", "", "language of the input (default: by file name; markdown for stdin and unknown names)")
	var mo index.MatchOptions
	fs.IntVar(&mo.MinTokens, "min-tokens", 0, "report matches of at least this many tokens (default: the index's guarantee threshold)")
	fs.IntVar(&mo.MaxPostings, "max-postings", 0, "ignore fingerprints found in more places than this (default 100; -1: no limit)")
	fs.BoolVar(&mo.Rename, "rename", false, "match rename-robustly: code with its identifiers renamed (needs an index built with --rename)")
	fs.BoolVar(&mo.NoAllow, "no-allow", false, "count fingerprints of the index's allow set as evidence too")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() == 0 || (*format != "text" && *format != "json") {
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
	ix, err := index.Open(*dir, index.OpenOptions{})
	if err != nil {
		return fail("%v", err)
	}
	defer ix.Close()
	if _, ok := ix.RenameParams(); mo.Rename && !ok {
		return fail("%s has no rename-robust fingerprints: rebuild it with --rename", *dir)
	}
	if mo.MinTokens > 0 && mo.MinTokens < ix.Params().Threshold() {
		fmt.Fprintf(os.Stderr, "indexer: note: matches shorter than %d tokens are found only by chance (the index guarantees t=%d)\n",
			ix.Params().Threshold(), ix.Params().Threshold())
	}
	rep := scanReport{Matches: []scanMatch{}}
	for _, name := range fs.Args() {
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
		m.Feed(s)
		for _, x := range m.Matches() {
			rep.Matches = append(rep.Matches, toScanMatch(name, len(s.Tokens), &x))
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
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

func toScanMatch(file string, ntok int, m *index.Match) scanMatch {
	return scanMatch{
		File: file, StartLine: m.Query.StartLine, EndLine: m.Query.EndLine, Tokens: m.Tokens,
		Coverage: float64(m.Tokens) / float64(max(ntok, 1)), AlsoIn: m.Others,
		Source: scanSource{
			Repo: m.Source.Repo.Name, Path: m.Source.Path, StartLine: m.Src.StartLine, EndLine: m.Src.EndLine,
			License: m.Source.License, LicenseFrom: m.Source.LicenseFrom, RepoLicense: m.Source.Repo.License,
			Version: m.Source.Repo.Version, URL: m.URL(),
		},
	}
}
