package main

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/index/redistest"
)

// TestEmacsRedisPartitions builds GNU Emacs' Lisp (its files whose names start with
// s, simple.el among them) into a Redis Cluster as three
// workers of one generation would, publishes it, scans against it as against local
// shards, and replaces it with a second generation.
func TestEmacsRedisPartitions(t *testing.T) {
	lisp := emacsLisp(t)
	c := redistest.ForTest(t)
	url := "redis://" + strings.Join(c.Addrs[:2], ",") + "/emacs-test"
	run(t, "", "gc", "--index", url, "--drop", "e1") // an earlier run's
	run(t, "", "gc", "--index", url, "--drop", "e2")
	simple := gunzip(t, lisp+"/simple.el.gz")
	a, b := definition(t, fingerprint.EmacsLisp, simple, "(defun delete-forward-char ")
	ex, first, last := excerpt(t, fingerprint.EmacsLisp, simple, a, b)
	query := "Here you go:\n\n```elisp\n" + ex + "```\n"
	if r := run(t, query, "scan", "--index", url, "-"); r.code != 2 || !strings.Contains(r.stderr, "no published index generation") {
		t.Errorf("scan of an empty cluster: exit %d, %s", r.code, r.stderr)
	}
	if r := run(t, "", "build", "--index", url, "--partition", "1/3", "emacs="+lisp); r.code != 2 || !strings.Contains(r.stderr, "--generation") {
		t.Errorf("a partition without a generation: exit %d %s", r.code, r.stderr)
	}
	var wg sync.WaitGroup
	results := make([]result, 3)
	for i := range 3 {
		wg.Go(func() {
			results[i] = run(t, "", "build", "--quiet", "--workers", "1", "--index", url, "--generation", "e1",
				"--partition", []string{"0/3", "1/3", "2/3"}[i], "--include", "s*", "emacs="+lisp)
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || !strings.Contains(r.stdout, "not published") {
			t.Fatalf("partition %d: exit %d\n%s\n%s", i, r.code, r.stdout, r.stderr)
		}
	}
	if r := run(t, query, "scan", "--index", url, "-"); r.code != 2 {
		t.Errorf("scan before the generation is published: exit %d", r.code)
	}
	if r := run(t, "", "publish", "--index", url, "--generation", "e1", "--partitions", "4"); r.code != 2 {
		t.Errorf("publish with the wrong partition count: exit %d %s", r.code, r.stdout)
	}
	if r := run(t, "", "publish", "--index", url, "--generation", "e1", "--partitions", "3"); r.code != 0 {
		t.Fatalf("publish: %d %s %s", r.code, r.stdout, r.stderr)
	}
	rep := scan(t, url, query, "-")
	if len(rep.Matches) != 1 {
		t.Fatalf("got %+v", rep)
	}
	s := rep.Matches[0].Source
	if s.Path != "simple.el" || s.License != "GPL-3.0-or-later" || s.StartLine != first || s.EndLine != last {
		t.Errorf("source %+v, want simple.el GPL-3.0-or-later lines %d-%d", s, first, last)
	}
	if r := run(t, query, "scan", "--rename", "--index", url, "-"); r.code != 2 || !strings.Contains(r.stderr, "no rename-robust fingerprints") {
		t.Errorf("scan --rename of a Redis index: exit %d, %s", r.code, r.stderr)
	}
	// A second generation, from one local index pushed whole, replaces the first.
	ix := filepath.Join(t.TempDir(), "ix")
	if r := run(t, "", "build", "--quiet", "--out", ix, "--include", "s*", "emacs="+lisp); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	r := run(t, "", "push", ix, "--index", url, "--generation", "e2", "--grace", "0s")
	if r.code != 0 || !strings.Contains(r.stdout, "generation e2 is served; e1 is retired") {
		t.Fatalf("push: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if rep := scan(t, url, query, "-"); len(rep.Matches) != 1 || rep.Matches[0].Source.StartLine != first {
		t.Errorf("after the switch: %+v", rep)
	}
	r = run(t, "", "gc", "--index", url)
	if r.code != 0 || !strings.Contains(r.stdout, "served: e2") || strings.Contains(r.stdout, "retired: e1") {
		t.Errorf("gc: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "", "gc", "--index", url, "--drop", "e2"); r.code != 2 {
		t.Errorf("dropping the served generation: exit %d", r.code)
	}
}
