package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// A report collects the figures of one run.
type report struct {
	started      time.Time
	sections     []*section
	tokens       int64 // of the kernel's .c and .h files
	fingerprints int64
	goBench      string // `go test -bench` output, if given
	goBenchIndex string // the index the index benchmarks ran on, if not a generated one
}

// A section is one table: figures, each beside its reference and its target.
type section struct {
	title string
	intro string
	rows  []row
	notes []string
}

type row struct {
	figure, value, reference, target string
	status                           string // "met", "missed by ...", or "" for no target
}

func (r *report) section(title, intro string) *section {
	s := &section{title: title, intro: intro}
	r.sections = append(r.sections, s)
	return s
}

// row adds a figure. A target it misses is marked with by how much (miss).
func (s *section) row(figure, value, reference, target string, met bool, miss string) {
	status := ""
	switch {
	case target == "":
	case met:
		status = "met"
	default:
		status = "**missed** " + miss
	}
	s.rows = append(s.rows, row{figure, value, reference, target, status})
}

func (s *section) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func (r *report) markdown(c *config) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`go run ./cmd/bench --write docs/BENCHMARKS.md`, which ends with `go test -bench` over the packages) "+
		"on %s, %s; run took %s. Machine: %s (host %s). Corpus: Debian's `linux-source-6.1` %s (`%s`), page cache warm; "+
		"the clean text is Go's own source (BSD-3-Clause), which the kernel index does not hold.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), gitDescribe(), time.Since(r.started).Round(time.Second), machine(), host,
		packageVersion("linux-source-6.1"), c.kernel)
	b.WriteString("Every figure is beside its reference measured in the same run, and its target from the performance issue; ")
	b.WriteString("where a target is missed, the row says by how much and the notes say where the time or the bytes go.\n")
	for _, s := range r.sections {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", s.title, s.intro)
		b.WriteString("| figure | measured | reference (same run) | target | |\n| --- | --- | --- | --- | --- |\n")
		for _, x := range s.rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", x.figure, x.value, x.reference, x.target, x.status)
		}
		for _, n := range s.notes {
			fmt.Fprintf(&b, "\n%s\n", n)
		}
	}
	if r.goBench != "" {
		on := "a generated index"
		if r.goBenchIndex != "" {
			on = "the kernel index built above (`CLEANROOM_BENCH_INDEX`)"
		}
		fmt.Fprintf(&b, "\n## Go benchmarks\n\n`go test -run '^$' -bench . -benchmem ./...`: fingerprinting over Go's own tree "+
			"(64 MB of it; `CLEANROOM_BENCH_SRC` names another), the index benchmarks on %s, the proxy's chunk reader on a "+
			"typical chunk.\n\n```\n", on)
		b.WriteString(strings.TrimSpace(r.goBench))
		b.WriteString("\n```\n")
	}
	return b.String()
}

func mb(v float64) string { return fmt.Sprintf("%.0f MB/s", v) }

// pct says how far v falls short of a target it should reach.
func pct(v, target float64) string {
	return fmt.Sprintf("by %.0f%% (%.2fx of the target)", 100*(target-v)/target, v/target)
}

// over says how far v exceeds a target it should stay under.
func over(v, target float64) string {
	return fmt.Sprintf("by %.0f%% (%.2fx the target)", 100*(v-target)/target, v/target)
}

func kib(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
}

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	}
}

// packageVersion returns the installed version of a Debian package, or "(version
// unknown)": the kernel's content, and so some figures, move between versions.
func packageVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "(version unknown)"
	}
	return string(out)
}
