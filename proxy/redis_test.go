package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cleanroom/index"
	"cleanroom/index/redistest"
	"cleanroom/proxy/upstream"
)

func TestMain(m *testing.M) {
	code := m.Run()
	redistest.Shutdown()
	os.Exit(code)
}

// redisURL returns the URL of the shared test cluster under a prefix of the
// test's own, emptied.
func redisURL(t *testing.T) string {
	t.Helper()
	c := redistest.ForTest(t)
	prefix := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	return "redis://" + strings.Join(c.Addrs[:3], ",") + "/" + prefix
}

// pushIndex uploads the local index in dir to the cluster as generation gen and
// serves it.
func pushIndex(t *testing.T, url, dir, gen string) {
	t.Helper()
	ctx := context.Background()
	r, err := index.DialRedis(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ix, err := index.Open(dir, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	r.Drop(ctx, gen) // left by an earlier run of the test
	if _, err := r.Push(ctx, ix, gen, 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ctx, gen, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// newRedisEnv is newEnv with the index served from the test cluster.
func newRedisEnv(t *testing.T, mode string, tweak ...func(*Options)) (*env, string) {
	url := redisURL(t)
	set := func(o *Options) {
		pushIndex(t, url, o.Index, "g1")
		o.Index = url
	}
	return newEnv(t, mode, "", append([]func(*Options){set}, tweak...)...), url
}

// outcomeOf summarises what a client got: text, finish reasons and citations.
// With exact, the citations whole; else where they are from, and not how much of
// the source a blocked stream had shown when it was cut (that depends on how the
// upstream's events fell into reads).
func outcomeOf(s *streamed, exact bool) string {
	var b strings.Builder
	for i := range len(s.content) {
		var ms []map[string]any
		raw, _ := json.Marshal(s.choices[i]["copyleft_matches"])
		json.Unmarshal(raw, &ms)
		if !exact {
			for _, m := range ms {
				delete(m, "tokens")
				delete(m, "end_line")
				delete(m, "share")
				delete(m, "url")
			}
		}
		raw, _ = json.Marshal(ms)
		fmt.Fprintf(&b, "choice %d: %q finish %s matches %s\n", i, s.content[i], s.finish[i], raw)
	}
	return b.String()
}

// TestRedisStreamsMatchLocal: the same blocked and clean streams, from an index in
// a Redis Cluster and from local shards.
func TestRedisStreamsMatchLocal(t *testing.T) {
	for _, mode := range []string{"block", "annotate"} {
		t.Run(mode, func(t *testing.T) {
			local := newEnv(t, mode, "")
			remote, _ := newRedisEnv(t, mode)
			clean := "Here is an original answer:\n\n```c\nint answer(void)\n{\n\treturn 42;\n}\n```\n"
			replies := []upstream.Reply{{Content: markdownAnswer(excerpt(local.gpl[5], 2, 50))}, {Content: clean},
				{Content: markdownAnswer(excerpt(local.lgpl[1], 3, 40))}}
			for _, e := range []*env{local, remote} {
				e.up.Script = upstream.FixedScript(replies...)
			}
			for _, stream := range []bool{true, false} {
				var got [2]string
				for i, e := range []*env{local, remote} {
					resp := post(t, e.px.URL+"/v1/chat/completions", chatBody(stream, 3, "three answers"))
					if stream {
						got[i] = outcomeOf(readStream(t, resp), mode == "annotate")
					} else {
						got[i] = outcomeOf(readWhole(t, resp), true)
					}
				}
				if got[0] != got[1] {
					t.Errorf("stream=%v: local shards:\n%s\nredis:\n%s", stream, got[0], got[1])
				}
				if mode == "block" && !strings.Contains(got[1], "finish content_filter") {
					t.Errorf("stream=%v: nothing blocked:\n%s", stream, got[1])
				}
				if !strings.Contains(got[1], `"path":"src/gen5.c"`) {
					t.Errorf("stream=%v: no citation of src/gen5.c:\n%s", stream, got[1])
				}
			}
		})
	}
}

// readWhole reads a non-streamed completion into the shape readStream gives.
func readWhole(t *testing.T, resp *http.Response) *streamed {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var obj struct {
		Choices []map[string]any `json:"choices"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	s := &streamed{content: map[int]string{}, finish: map[int]string{}, choices: map[int]map[string]any{}}
	for _, ch := range obj.Choices {
		i := int(ch["index"].(float64))
		msg, _ := ch["message"].(map[string]any)
		s.content[i], _ = msg["content"].(string)
		s.finish[i], _ = ch["finish_reason"].(string)
		s.choices[i] = ch
	}
	return s
}

// TestRedisGenerationSwitch: a new generation published while the proxy runs is
// followed within a poll.
func TestRedisGenerationSwitch(t *testing.T) {
	e, url := newRedisEnv(t, "block", func(o *Options) { o.Poll = 50 * time.Millisecond })
	dir := filepath.Join(t.TempDir(), "ix2")
	gpl2, _, _ := buildTestIndex(t, dir, 7)
	oldCode := markdownAnswer(excerpt(e.gpl[2], 3, 50))
	newCode := markdownAnswer(excerpt(gpl2[4], 3, 50))
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: oldCode})
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] != "content_filter" {
		t.Fatalf("generation 1's code was not blocked: %q", s.finish[0])
	}
	pushIndex(t, url, dir, "g2")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(metricsText(t, e), `cleanroom_index_generation_info{generation="g2"} 1`) {
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not follow the generation pointer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: newCode})
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] != "content_filter" {
		t.Errorf("generation 2's code was not blocked: %q", s.finish[0])
	}
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: oldCode})
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] != "stop" || s.content[0] != oldCode {
		t.Errorf("generation 1's code, no longer indexed, was changed: %q", s.finish[0])
	}
}

func metricsText(t *testing.T, e *env) string {
	resp, err := http.Get(e.px.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// breakLookups closes the proxy's connection to the cluster: every lookup fails
// from then on, as when the cluster is unreachable.
func breakLookups(e *env) {
	e.srv.store.loading.Lock()
	e.srv.store.redis.Close()
	e.srv.store.loading.Unlock()
}

// TestRedisLookupFailure: a lookup that fails blocks what was not checked
// (fail-closed), or lets it pass unchecked with --fail-open; either way it is
// counted and the answer is well formed.
func TestRedisLookupFailure(t *testing.T) {
	t.Run("fail-closed", func(t *testing.T) {
		e, _ := newRedisEnv(t, "block")
		code := markdownAnswer(excerpt(e.gpl[3], 5, 60))
		e.up.Script = upstream.FixedScript(upstream.Reply{Content: code})
		breakLookups(e)
		s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x")))
		if len(s.errors) != 1 || s.errors[0]["code"] != "index_unavailable" || s.done {
			t.Errorf("errors %v, done %v; want one index_unavailable error and no [DONE]", s.errors, s.done)
		}
		if got := e.longestRun(s.content[0]); got >= e.ix.Params().Threshold() {
			t.Errorf("unchecked text leaked: a run of %d tokens", got)
		}
		resp := post(t, e.px.URL+"/v1/chat/completions", chatBody(false, 1, "x"))
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(b), `"code":"index_unavailable"`) {
			t.Errorf("non-streamed: %d %s", resp.StatusCode, b)
		}
		if n := counterValue(t, e, `cleanroom_index_store_errors_total{op="lookup"}`); n != 2 {
			t.Errorf("lookup errors counted: %v, want 2", n)
		}
		if n := counterValue(t, e, `cleanroom_requests_total{endpoint="chat",outcome="unavailable",stream="true"}`); n != 1 {
			t.Errorf("unavailable streams counted: %v, want 1", n)
		}
	})
	t.Run("fail-open", func(t *testing.T) {
		e, _ := newRedisEnv(t, "block", func(o *Options) { o.FailOpen = true })
		code := markdownAnswer(excerpt(e.gpl[3], 5, 60))
		e.up.Script = upstream.FixedScript(upstream.Reply{Content: code})
		breakLookups(e)
		s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x")))
		if s.content[0] != code || s.finish[0] != "stop" || !s.done || len(s.errors) != 0 {
			t.Errorf("fail-open: finish %q, done %v, errors %v; want the answer unchanged", s.finish[0], s.done, s.errors)
		}
		if n := counterValue(t, e, `cleanroom_requests_total{endpoint="chat",outcome="unchecked",stream="true"}`); n != 1 {
			t.Errorf("unchecked streams counted: %v, want 1", n)
		}
		if n := counterValue(t, e, `cleanroom_index_store_errors_total{op="lookup"}`); n != 1 {
			t.Errorf("lookup errors counted: %v, want 1", n)
		}
	})
}

// TestRedisFailover kills a primary of the cluster while clients stream through the
// proxy: every answer is well formed, none leaks, and once the cluster has failed
// over every answer is right again.
func TestRedisFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("fails a cluster node over: not in -short")
	}
	e, _ := newRedisEnv(t, "block")
	c := redistest.ForTest(t)
	code := markdownAnswer(excerpt(e.gpl[3], 5, 60))
	clean := "Here is an original answer:\n\n```c\nint answer(void)\n{\n\treturn 42;\n}\n```\n"
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: code}, upstream.Reply{Content: clean})
	thr := e.ix.Params().Threshold()
	var right, indexErrs, wrong atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				resp := post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 2, "x"))
				s := readStream(t, resp)
				switch {
				case e.longestRun(s.content[0]) >= thr:
					wrong.Add(1)
					mu.Lock()
					problems = append(problems, "leak: "+outcomeOf(s, false))
					mu.Unlock()
				case len(s.errors) == 1 && s.errors[0]["code"] == "index_unavailable":
					indexErrs.Add(1)
				case s.finish[0] == "content_filter" && s.finish[1] == "stop" && s.content[1] == clean && s.done && len(s.errors) == 0:
					right.Add(1)
				default:
					wrong.Add(1)
					mu.Lock()
					problems = append(problems, outcomeOf(s, false)+fmt.Sprint(s.errors))
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The primary of the bucket keys' slots: any primary holds some.
	prims, err := c.Primaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := prims[0]
	before := right.Load()
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Cleanup(func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer rcancel()
		if err := c.Restart(rctx, victim); err != nil {
			t.Errorf("restarting %s: %v", victim, err)
		}
		if err := c.WaitHealthy(rctx); err != nil {
			t.Errorf("the cluster did not heal: %v", err)
		}
	})
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	healed := time.Since(killed)
	time.Sleep(time.Second)
	afterHeal, errsAtHeal := right.Load(), indexErrs.Load()
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	t.Logf("killed primary %s; the cluster failed over in %v; answers: %d right (%d before the kill), %d index_unavailable, %d wrong; %d right and %d errors in the last second",
		victim, healed.Round(time.Millisecond), right.Load(), before, indexErrs.Load(), wrong.Load(), right.Load()-afterHeal, indexErrs.Load()-errsAtHeal)
	if wrong.Load() > 0 {
		t.Errorf("%d wrong answers: %s", wrong.Load(), strings.Join(problems[:min(3, len(problems))], "\n"))
	}
	if right.Load()-afterHeal == 0 || indexErrs.Load() != errsAtHeal {
		t.Errorf("after the failover: %d right, %d index errors; want only right answers", right.Load()-afterHeal, indexErrs.Load()-errsAtHeal)
	}
	if n := counterValue(t, e, `cleanroom_index_store_errors_total{op="lookup"}`); n != float64(indexErrs.Load()) {
		t.Errorf("lookup errors counted %v, clients saw %d", n, indexErrs.Load())
	}
}
