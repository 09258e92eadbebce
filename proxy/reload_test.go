package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"cleanroom/proxy/upstream"
)

// TestReloadUnderLoad swaps the index ten times while clients stream completions:
// no request fails, blocked answers stay blocked, clean ones clean.
func TestReloadUnderLoad(t *testing.T) {
	e := newEnv(t, "block", "")
	gplAnswer := markdownAnswer(excerpt(e.gpl[0], 3, 40))
	e.up.Script = func(r *upstream.Request) ([]upstream.Reply, error) {
		if strings.Contains(r.LastUser(), "gpl") {
			return []upstream.Reply{{Content: gplAnswer}}, nil
		}
		return []upstream.Reply{{Content: "An original answer, " + r.LastUser()}}, nil
	}
	var failures atomic.Int64
	var requests atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				gpl := (w+i)%2 == 0
				user := fmt.Sprintf("clean %d %d", w, i)
				if gpl {
					user = "gpl please"
				}
				s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, user)))
				requests.Add(1)
				want := "stop"
				if gpl {
					want = "content_filter"
				}
				if !s.done || s.finish[0] != want || len(s.errors) > 0 {
					failures.Add(1)
					t.Errorf("request %q during reloads: finish %q, done %v, errors %v", user, s.finish[0], s.done, s.errors)
				}
			}
		}(w)
	}
	ixDir := filepath.Join(e.dir, "ix")
	for i := 0; i < 10; i++ {
		buildTestIndex(t, ixDir, 99) // the same corpus, new shard files
		if err := e.srv.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got := testutil.ToFloat64(e.srv.metrics.reloads.WithLabelValues("success")); got != 11 {
		t.Errorf("%v successful loads, want 11", got)
	}
	t.Logf("%d requests, %d failed, during 10 reloads", requests.Load(), failures.Load())
	if requests.Load() < 20 {
		t.Errorf("only %d requests ran during the reloads", requests.Load())
	}
	// Every replaced index was closed once its last request ended: only the current
	// build's shards remain on disk, and the store holds one reference.
	shards, _ := filepath.Glob(filepath.Join(ixDir, "shard-*"))
	if len(shards) != 1 {
		t.Errorf("shard files left: %v", shards)
	}
	e.srv.store.mu.Lock()
	refs := e.srv.store.cur.refs
	e.srv.store.mu.Unlock()
	if refs != 1 {
		t.Errorf("the current index has %d references with no request running, want 1", refs)
	}
}

// TestPollReload rebuilds the index with other code: the proxy notices the new
// manifest by itself and blocks the new code.
func TestPollReload(t *testing.T) {
	e := newEnv(t, "block", "", func(o *Options) { o.Poll = 20 * time.Millisecond })
	other := t.TempDir()
	newGPL, _, _ := buildTestIndex(t, other, 7)
	answer := markdownAnswer(excerpt(newGPL[0], 3, 40))
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: answer})
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] != "stop" {
		t.Fatalf("code not yet indexed was blocked")
	}
	buildTestIndex(t, filepath.Join(e.dir, "ix"), 7)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] == "content_filter" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the rebuilt index was not picked up")
}

// TestReloadFailureKeepsServing breaks the index on disk: the reload fails, is
// counted, and the proxy goes on with the index it has.
func TestReloadFailureKeepsServing(t *testing.T) {
	e := newEnv(t, "block", "")
	manifest := filepath.Join(e.dir, "ix", "manifest.json")
	good, _ := os.ReadFile(manifest)
	os.WriteFile(manifest, []byte(strings.Replace(string(good), `"tokenizer": 2`, `"tokenizer": 42`, 1)), 0o644)
	if err := e.srv.Reload(); err == nil {
		t.Fatal("a reload of an index from another tokenizer succeeded")
	}
	if got := testutil.ToFloat64(e.srv.metrics.reloads.WithLabelValues("failure")); got != 1 {
		t.Errorf("failed reloads counted %v, want 1", got)
	}
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(excerpt(e.gpl[2], 3, 40))})
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] != "content_filter" {
		t.Errorf("after a failed reload the old index no longer blocks: %q", s.finish[0])
	}
}

func TestRefusesToStartWithoutIndex(t *testing.T) {
	_, err := New(Options{Index: t.TempDir(), Upstream: "http://127.0.0.1:1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "not an index") {
		t.Errorf("New with an empty index directory: %v", err)
	}
}
