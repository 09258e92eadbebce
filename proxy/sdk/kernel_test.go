package sdk_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom/corpus"
	"cleanroom/proxy/upstream"
)

// kernelArchive is Debian's linux-source-6.1 package.
const kernelArchive = "/usr/src/linux-source-6.1.tar.xz"

// kernel is an index of the scheduler's part of the kernel and the text of
// kernel/sched/core.c, built once per test binary by the first test that needs them.
var kernel struct {
	once  sync.Once
	ci    *corpusIndex
	coreC string
	err   error
}

// kernelCorpus returns the kernel index and core.c, or skips the test.
func kernelCorpus(t *testing.T) (*corpusIndex, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("building the kernel index takes half a minute: skipped with -short")
	}
	if _, err := os.Stat(kernelArchive); err != nil {
		t.Skipf("%s is missing: install the Debian package linux-source-6.1 (make deps does)", kernelArchive)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH: it builds the indexer")
	}
	kernel.once.Do(func() {
		start := time.Now()
		kernel.ci, kernel.coreC, kernel.err = buildKernel()
		t.Logf("kernel/sched index and core.c ready in %s", time.Since(start).Round(100*time.Millisecond))
	})
	if kernel.err != nil {
		t.Fatal(kernel.err)
	}
	return kernel.ci, kernel.coreC
}

// kernelVersion returns the version of the linux-source-6.1 package installed, as
// the indexer records it, for the test's log.
func kernelVersion() string {
	if src, err := corpus.OpenSource(kernelArchive); err == nil && src.Version != "" {
		return src.Version
	}
	return "(version unknown)"
}

func closeKernel() {
	if kernel.ci != nil {
		kernel.ci.ix.Close()
	}
}

// buildKernel builds the indexer and indexes kernel/sched with it, as a user would,
// while reading core.c out of the archive: both decompress it, one core each.
func buildKernel() (*corpusIndex, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type file struct {
		text []byte
		err  error
	}
	core := make(chan file, 1)
	go func() {
		text, err := exec.CommandContext(ctx, "tar", "-xJOf", kernelArchive, "--occurrence=1",
			"linux-source-6.1/kernel/sched/core.c").Output()
		core <- file{text, err}
	}()
	bin := filepath.Join(tmp, "indexer")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "cleanroom/cmd/indexer").CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("go build cleanroom/cmd/indexer: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "kernel")
	if out, err := exec.CommandContext(ctx, bin, "build", "--quiet", "--out", dir,
		"--include", "linux-source-6.1/kernel/sched/**", kernelArchive).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("indexer build: %v\n%s", err, out)
	}
	ci, err := openCorpus(dir)
	if err != nil {
		return nil, "", err
	}
	f := <-core
	if f.err != nil {
		ci.ix.Close()
		return nil, "", fmt.Errorf("reading core.c out of %s: %w", kernelArchive, f.err)
	}
	return ci, string(f.text), nil
}

// cFunction returns the C function of src whose definition starts with the line
// def, with the comment just above it, up to the first line that is "}".
func cFunction(src, def string) (string, bool) {
	lines := strings.SplitAfter(src, "\n")
	for i, l := range lines {
		if strings.TrimSuffix(l, "\n") != def {
			continue
		}
		start := i
		if i > 0 && strings.TrimSpace(lines[i-1]) == "*/" {
			for start--; start > 0 && !strings.HasPrefix(lines[start], "/*"); start-- {
			}
		}
		for j := i; j < len(lines); j++ {
			if lines[j] == "}\n" {
				return strings.Join(lines[start:j+1], ""), true
			}
		}
	}
	return "", false
}

// TestKernel has the upstream regurgitate a function of the kernel's scheduler, in
// uneven chunks, and checks what the clients get of it through the proxy.
func TestKernel(t *testing.T) {
	ci, coreC := kernelCorpus(t)
	fn, ok := cFunction(coreC, "void scheduler_tick(void)")
	if !ok {
		t.Fatal("scheduler_tick is not in kernel/sched/core.c")
	}
	if n := strings.Count(fn, "\n"); n < 40 {
		t.Fatalf("scheduler_tick is %d lines, want at least 40", n)
	}
	// The lines the citation must lie in, from the installed core.c: they move between
	// the package's versions.
	first := 1 + strings.Count(coreC[:strings.Index(coreC, fn)], "\n")
	last := first + strings.Count(fn, "\n") - 1
	t.Logf("linux-source-6.1 %s: scheduler_tick() at lines %d-%d of kernel/sched/core.c", kernelVersion(), first, last)
	gpl := reply{text: upstream.Markdown("c", fn), path: "kernel/sched/core.c", license: "GPL-2.0-only"}
	cases := []struct {
		name    string
		replies []reply
	}{
		{"n1", []reply{gpl}},
		{"n2", []reply{gpl, {text: original}}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					texts := make([]string, len(tc.replies))
					for j, r := range tc.replies {
						texts[j] = r.text
					}
					e := newEnv(t, ci, "block", int64(100+i), texts...)
					r := request{endpoint: "chat", stream: true, n: len(tc.replies), prompt: "How does the scheduler tick?"}
					got := c.mustSend(t, e.api, r)
					checkChoices(t, ci, "block", got, tc.replies)
					for j, w := range tc.replies {
						if w.path == "" || j >= len(got.Choices) || len(got.Choices[j].CopyleftMatches) == 0 {
							continue // checkChoices has said what is wrong
						}
						if m := got.Choices[j].CopyleftMatches[0]; m.StartLine < first || m.EndLine > last {
							t.Errorf("choice %d cites lines %d-%d, want within scheduler_tick's %d-%d", j, m.StartLine, m.EndLine, first, last)
						}
					}
				})
			}
		})
	}
}
