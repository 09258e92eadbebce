package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/index"
	"cleanroom/proxy"
)

// renameCost measures what the proxy's --rename costs: the kernel indexed with
// rename-robust fingerprints too (build time, RSS, size, the heap of the loaded
// index), the gateway's throughput in block mode with and without it on the same
// clean stream, and block mode's holdback on clean text.
func renameCost(c *config, r *report) error {
	dir := filepath.Join(c.out, "kernel-rename")
	os.RemoveAll(dir)
	var out bytes.Buffer
	cmd := exec.Command(c.indexer, "build", "--rename", "--out", dir, c.kernel)
	cmd.Stdout, cmd.Stderr = &out, io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", cmd, err, out.Bytes())
	}
	wall := time.Since(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10
	}
	syscall.Sync()
	exact, err := index.Open(c.index, index.OpenOptions{SkipRename: true})
	if err != nil {
		return err
	}
	exactMem, exactFPs := exact.MemoryBytes(), exact.NumPostings()
	exact.Close()
	ren, err := index.Open(dir, index.OpenOptions{})
	if err != nil {
		return err
	}
	renMem := ren.MemoryBytes()
	rp, _ := ren.RenameParams()
	ren.Close()
	s := r.section("Rename-robust matching in the proxy (`--rename`)", fmt.Sprintf(
		"The kernel indexed again with `indexer build --rename` (rename-robust fingerprints k=%d w=%d, threshold %d tokens, beside "+
			"the exact ones), and cleanroom in block mode with `--rename` on it, against the exact-only index of the build above and a "+
			"plain ReverseProxy, all on the same clean stream as the gateway section, in alternating rounds (throughput only); the "+
			"holdback as in the holdback section. False alarms of rename-robust matching are in docs/EVAL.md (files flagged "+
			"rename-robustly); the proxy uses the same matcher.", rp.K, rp.W, rp.Threshold()))
	s.row("build with --rename: wall time, peak RSS", fmt.Sprintf("%s, %.2f GiB", wall.Round(time.Second), float64(rss)/(1<<30)), "", "", true, "")
	s.row("loaded index: heap", fmt.Sprintf("%.0f MB with --rename", float64(renMem)/1e6),
		fmt.Sprintf("exact only: %.0f MB (%d fingerprints)", float64(exactMem)/1e6, exactFPs), "", true, "")

	content, _, up, ts, err := cleanGateway(c)
	if err != nil {
		return err
	}
	defer up.Close()
	var plain, block *target
	for _, t := range ts {
		switch t.name {
		case "plain ReverseProxy":
			plain = t
		case "cleanroom block":
			block = t
		}
	}
	rs, err := proxy.New(proxy.Options{Index: dir, Upstream: up.URL, Mode: "block", Rename: true, AuditLog: os.DevNull},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	rhs := httptest.NewServer(rs.Handler())
	renT := &target{name: "cleanroom block --rename", url: rhs.URL, client: newClient(), close: func() { rhs.Close(); rs.Close() }}
	defer func() {
		for _, t := range append(ts, renT) {
			t.close()
		}
	}()
	three := []*target{plain, block, renT}
	for _, t := range three {
		_, body, err := t.complete(false)
		if err != nil {
			return err
		}
		if got := contentOf(body); got != content {
			return fmt.Errorf("%s changed the content", t.name)
		}
	}
	thr, err := throughputRounds(c, three)
	if err != nil {
		return err
	}
	p := median(thr[plain.name])
	s.row("cleanroom block --rename: completions/s", fmt.Sprintf("%.0f (%.2fx)", median(thr[renT.name]), median(thr[renT.name])/p),
		fmt.Sprintf("block, exact only: %.0f (%.2fx); plain: %.0f", median(thr[block.name]), median(thr[block.name])/p, p), "", true, "")

	hb, err := goSource("net/http/server.go")
	if err != nil {
		return err
	}
	hc, err := excerpt(fingerprint.Go, hb, 8000, 600)
	if err != nil {
		return err
	}
	lags, err := measureLag(c, dir, hc, func(o *proxy.Options) { o.Rename = true })
	if err != nil {
		return err
	}
	s.row("block --rename: tokens the client trails the model by, clean text", fmt.Sprintf("median %.0f, p99 %.0f, max %.0f",
		percentile(lags, 50), percentile(lags, 99), slices.Max(lags)), fmt.Sprintf("rename threshold - 1 = %d", rp.Threshold()-1), "", true, "")
	return nil
}
