package corpus

import (
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"cleanroom/corpus/license"
)

// realSource opens an installed corpus for a test, or skips the test: in -short mode,
// under the race detector, and when the corpus is absent.
func realSource(t *testing.T, p string) *Source {
	t.Helper()
	if testing.Short() {
		t.Skip("real corpus: skipped in -short mode")
	}
	if raceEnabled {
		t.Skip("real corpus: skipped under the race detector")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real corpus %s: %v", p, err)
	}
	src, err := OpenSource(p)
	must(t, err)
	return src
}

// corpusReport is what a walk over a real corpus found.
type corpusReport struct {
	src      *Source
	stats    *Stats
	repos    *Repos
	licenses map[string]string // path -> FileLicense of the files of interest
	from     map[string]map[string]int
	skips    map[string]map[string]int // extension -> reason -> count
	elapsed  time.Duration
}

// walkCorpus walks a real corpus, recording FileLicense for every file whose extension
// is in exts and the skip reasons by extension.
func walkCorpus(t *testing.T, src *Source, exts ...string) *corpusReport {
	t.Helper()
	rep := &corpusReport{src: src, stats: &Stats{}, repos: NewRepos(src), licenses: make(map[string]string),
		from: make(map[string]map[string]int), skips: make(map[string]map[string]int)}
	want := make(map[string]bool)
	for _, e := range exts {
		want[e] = true
		rep.from[e] = make(map[string]int)
		rep.skips[e] = make(map[string]int)
	}
	opts := Options{OnSkip: func(p, reason string) {
		if e := path.Ext(p); want[e] {
			rep.skips[e][reason]++
		}
	}}
	start := time.Now()
	err := Walk(t.Context(), src, opts, rep.repos, rep.stats, func(f *File) error {
		e := path.Ext(f.Path)
		if !want[e] {
			return nil
		}
		expr, from := FileLicense(f.Data)
		rep.from[e][from]++
		rep.licenses[f.Path] = expr
		return nil
	})
	rep.elapsed = time.Since(start)
	if err != nil {
		t.Fatalf("Walk(%s): %v", src.Path, err)
	}
	must(t, rep.repos.Detect())
	t.Logf("%s (%s, version %q): walked in %v, %d files (%d MB) visited, %d license files, skipped %v",
		src.Name, src.Kind, src.Version, rep.elapsed.Round(time.Millisecond), rep.stats.Files, rep.stats.Bytes>>20, rep.stats.LicenseFiles, rep.stats.Skipped)
	for _, e := range exts {
		n := 0
		for _, c := range rep.from[e] {
			n += c
		}
		if n == 0 {
			continue
		}
		t.Logf("%s files: %d visited, %.1f%% SPDX line, %.1f%% notice, %.1f%% none; skipped %v", e, n,
			100*float64(rep.from[e][FromSPDXLine])/float64(n), 100*float64(rep.from[e][FromNotice])/float64(n),
			100*float64(rep.from[e][""])/float64(n), rep.skips[e])
	}
	for _, r := range rep.repos.All() {
		t.Logf("repo %q (%s): %q confidence %.2f from %v", r.Root, r.Name, r.License, r.Confidence, r.LicenseFiles)
	}
	return rep
}

// share returns the part of the files with extension e whose license came from one of froms.
func (rep *corpusReport) share(e string, froms ...string) float64 {
	n, k := 0, 0
	for from, c := range rep.from[e] {
		n += c
		for _, f := range froms {
			if from == f {
				k += c
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float64(k) / float64(n)
}

// contentSkipShare returns the part of the files with the extensions that the
// content rules (binary, generated, minified) threw away.
func (rep *corpusReport) contentSkipShare(exts ...string) float64 {
	visited, skipped := 0, 0
	for _, e := range exts {
		for _, c := range rep.from[e] {
			visited += c
		}
		for _, r := range []string{SkipBinary, SkipGenerated, SkipMinified} {
			skipped += rep.skips[e][r]
		}
	}
	return float64(skipped) / float64(visited+skipped)
}

func TestKernelArchive(t *testing.T) {
	src := realSource(t, "/usr/src/linux-source-6.1.tar.xz")
	rep := walkCorpus(t, src, ".c", ".h")
	const top = "linux-source-6.1"
	if rep.stats.Files < 50000 {
		t.Errorf("%d files visited, want over 50000", rep.stats.Files)
	}
	if got, want := src.BytesRead(), src.Size(); got != want {
		t.Errorf("BytesRead %d, want Size %d", got, want)
	}
	if got := rep.licenses[top+"/kernel/sched/core.c"]; got != "GPL-2.0-only" {
		t.Errorf("kernel/sched/core.c: FileLicense %q, want GPL-2.0-only", got)
	}
	if s := rep.share(".c", FromSPDXLine) + rep.share(".h", FromSPDXLine); s < 1.6 {
		t.Errorf("SPDX lines in %.0f%% of .c and .h files together, want most", 50*s)
	}
	if s := rep.contentSkipShare(".c", ".h"); s > 0.015 {
		t.Errorf("content rules skipped %.1f%% of .c and .h files, want few", 100*s)
	}
	base := rep.repos.All()[0]
	if base.Root != top || base.Name != top {
		t.Errorf("base repo %q named %q, want %q", base.Root, base.Name, top)
	}
	if base.License != "GPL-2.0 WITH Linux-syscall-note" {
		t.Errorf("base repo license %q, want the SPDX line of COPYING", base.License)
	}
	for p, root := range map[string]string{
		top + "/fs/jffs2/gc.c":                                top + "/fs/jffs2",
		top + "/tools/usb/usbip/src/usbip.c":                  top + "/tools/usb/usbip",
		top + "/kernel/sched/core.c":                          top,
		top + "/drivers/net/wireless/marvell/libertas/main.c": top + "/drivers/net/wireless/marvell/libertas",
	} {
		if got := rep.repos.For(p).Root; got != root {
			t.Errorf("For(%s) = %q, want %q", p, got, root)
		}
	}
	for _, r := range rep.repos.All() {
		if _, err := license.Classify(r.License); err != nil {
			t.Errorf("repo %s: %v", r.Root, err)
		}
	}
	unparsable := 0
	for _, expr := range rep.licenses {
		if _, err := license.Classify(expr); err != nil {
			unparsable++
		}
	}
	t.Logf("%d of %d file licenses do not parse", unparsable, len(rep.licenses))
	if unparsable > 10 {
		t.Errorf("%d file licenses do not parse", unparsable)
	}
}

func TestGlibcArchive(t *testing.T) {
	// glibc-source names its tarball for the upstream release it packages.
	m, _ := filepath.Glob("/usr/src/glibc/glibc-*.tar.xz")
	if len(m) == 0 {
		t.Skip("glibc-source is not installed (make demo-deps installs it)")
	}
	sort.Strings(m)
	src := realSource(t, m[len(m)-1])
	top := strings.TrimSuffix(filepath.Base(src.Path), ".tar.xz") // "glibc-2.36"
	rep := walkCorpus(t, src, ".c", ".h")
	if got := rep.licenses[top+"/malloc/malloc.c"]; got != "LGPL-2.1-or-later" {
		t.Errorf("malloc/malloc.c: FileLicense %q, want LGPL-2.1-or-later", got)
	}
	if s := rep.share(".c", FromNotice, FromSPDXLine); s < 0.7 {
		t.Errorf("licenses found in %.0f%% of .c files, want over 70%%", 100*s)
	}
	if base := rep.repos.All()[0]; base.Root != top || base.License != "LGPL-2.1-only" {
		t.Errorf("base repo %q license %q, want %s with LGPL-2.1-only (COPYING.LIB over COPYING)", base.Root, base.License, top)
	}
}

func TestEmacsLisp(t *testing.T) {
	dirs, _ := filepath.Glob("/usr/share/emacs/*/lisp")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		t.Skip("no /usr/share/emacs/*/lisp")
	}
	src := realSource(t, dirs[len(dirs)-1])
	rep := walkCorpus(t, src, ".el")
	if got := rep.licenses["simple.el"]; got != "GPL-3.0-or-later" {
		t.Errorf("simple.el: FileLicense %q, want GPL-3.0-or-later", got)
	}
	if s := rep.share(".el", FromNotice, FromSPDXLine); s < 0.9 {
		t.Errorf("licenses found in %.0f%% of .el files, want over 90%%", 100*s)
	}
	if rep.stats.Skipped[SkipSymlink] == 0 {
		t.Errorf("COPYING, a link out of the tree, not counted as a symlink: %v", rep.stats.Skipped)
	}
	for _, r := range rep.repos.All() {
		if r.Root != "" || strings.Contains(strings.Join(r.LicenseFiles, " "), "COPYING") {
			t.Errorf("repo %q from %v: want only the root, without the linked COPYING", r.Root, r.LicenseFiles)
		}
	}
}
