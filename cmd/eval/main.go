// Command eval measures how well cleanroom detects copied copyleft code and how
// rarely it raises false alarms, on real corpora, and writes the table to
// docs/EVAL.md. `make eval` runs it.
//
//	eval [--out out/eval] [--samples 600] [--generated-samples 60] [--seed 1] [--write docs/EVAL.md]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// config is what one evaluation run uses.
type config struct {
	out        string
	samples    int
	genSamples int // passages sampled from generated files indexed for their copyleft notice
	seed       uint64
	leak       int
	write      string
	kernel     string
	emacs      string
	glibc      string
	npm        string // directory holding node_modules of permissive npm packages
	repo       string // this project's tree
	dump       string // directory to write the verbatim misses and the leaks to, for study
	goroot     string
	log        *slog.Logger
}

func main() {
	var c config
	flag.StringVar(&c.out, "out", "out/eval", "`directory` for the index and the corpora the evaluation builds")
	flag.IntVar(&c.samples, "samples", 600, "passages sampled from indexed files")
	flag.IntVar(&c.genSamples, "generated-samples", 60, "passages sampled besides from generated files indexed for their copyleft notice")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the sampling")
	flag.IntVar(&c.leak, "leak", 100, "passages streamed through the proxy in block mode")
	flag.StringVar(&c.write, "write", "", "`file` to write the report to (docs/EVAL.md)")
	flag.StringVar(&c.kernel, "kernel", "/usr/src/linux-source-6.1.tar.xz", "linux-source-6.1 archive")
	flag.StringVar(&c.emacs, "emacs", "", "emacs-el's Lisp directory (default: the newest /usr/share/emacs/*/lisp)")
	flag.StringVar(&c.glibc, "glibc", "", "glibc-source archive (default: /usr/src/glibc/glibc-*.tar.xz)")
	flag.StringVar(&c.npm, "npm", "cmd/eval/npm", "`directory` with node_modules of permissive npm packages (make eval installs them)")
	flag.StringVar(&c.repo, "repo", ".", "this project's tree, a negative set")
	flag.StringVar(&c.dump, "dump-misses", "", "`directory` to write the verbatim passages missed, and the answers a client got more than t-1 tokens of, to, for study")
	flag.Parse()
	c.goroot = runtime.GOROOT()
	c.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if c.emacs == "" {
		// The Lisp of whichever Emacs emacs-el installed (28.2 in Debian 12).
		m, _ := filepath.Glob("/usr/share/emacs/*/lisp/simple.el.gz")
		if len(m) == 0 {
			fmt.Fprintln(os.Stderr, "eval: emacs-el is not installed (make eval installs it)")
			os.Exit(2)
		}
		slices.Sort(m)
		c.emacs = filepath.Dir(m[len(m)-1])
	}
	if c.glibc == "" {
		m, _ := filepath.Glob("/usr/src/glibc/glibc-*.tar.xz")
		if len(m) == 0 {
			fmt.Fprintln(os.Stderr, "eval: glibc-source is not installed (make eval installs it)")
			os.Exit(2)
		}
		c.glibc = m[0]
	}
	for _, p := range []string{c.kernel, c.emacs, c.glibc} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "eval: %v (make eval installs the corpora)\n", err)
			os.Exit(2)
		}
	}
	start := time.Now()
	r, err := run(&c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "eval: %v\n", err)
		os.Exit(1)
	}
	r.elapsed = time.Since(start).Round(time.Second)
	report := r.markdown(&c)
	fmt.Print(report)
	if c.write != "" {
		if err := os.WriteFile(c.write, []byte(report), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "eval: %v\n", err)
			os.Exit(1)
		}
	}
	if !r.ok() {
		fmt.Fprintln(os.Stderr, "eval: some targets are missed (see the table)")
	}
}

// commandLine is how the report says it was made.
func commandLine() string {
	return "go run ./cmd/eval " + strings.Join(os.Args[1:], " ")
}
