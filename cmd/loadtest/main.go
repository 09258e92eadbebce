// Command loadtest puts the proxy under load on loopback, in one process: the test
// upstream (proxy/upstream) plays the model, the proxy filters in block mode over a
// generated index (or --index DIR), and many clients stream chat completions at
// once, some of which copy indexed GPL code and must be blocked.
//
//	loadtest [--clients 500] [--duration 60s] [--baseline 15s] [--reloads 10] [--pace 20ms]
//
// It runs the same load against the upstream directly (the baseline) and through
// the proxy, meanwhile reloading the index --reloads times, and reports:
//
//   - requests and errors: a request that did not get status 200, a whole stream
//     ending in [DONE], the answer the upstream sent (clean) or a cut one with
//     finish_reason content_filter (copied). The upstream injects no faults, so
//     every error is the proxy's.
//   - the added latency: p50/p99 of the time to the first byte and to the end of
//     the stream, through the proxy and direct;
//   - goroutines and heap in use before the load (after a warm-up at full
//     concurrency) and after it, once the clients are gone: growth is a leak.
//
// It exits 1 when a request failed or a reload failed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cleanroom/index/indextest"
	"cleanroom/proxy"
	"cleanroom/proxy/upstream"
)

func main() {
	os.Exit(run())
}

type config struct {
	clients  int
	duration time.Duration
	baseline time.Duration
	warmup   time.Duration
	reloads  int
	pace     time.Duration
	copied   int // one request in this many asks for copied code
	index    string
}

func run() int {
	var c config
	flag.IntVar(&c.clients, "clients", 500, "concurrent streaming clients")
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "how long the load through the proxy runs")
	flag.DurationVar(&c.baseline, "baseline", 15*time.Second, "how long the same load runs against the upstream directly")
	flag.DurationVar(&c.warmup, "warmup", 5*time.Second, "load through the proxy before the first measurement")
	flag.IntVar(&c.reloads, "reloads", 10, "index reloads during the load")
	flag.DurationVar(&c.pace, "pace", 20*time.Millisecond, "the upstream's pause between writes (a model's token rate)")
	flag.IntVar(&c.copied, "copied-every", 10, "one request in this many gets copied GPL code (blocked); 0 for none")
	flag.StringVar(&c.index, "index", "", "index directory to serve (default: a generated one, rebuilt at each reload)")
	flag.Parse()
	if err := loadtest(c); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 1
	}
	return 0
}

// answers are the upstream's replies: original prose with code, or a GPL excerpt.
type answers struct {
	clean, copied string
}

func loadtest(c config) error {
	tmp, err := os.MkdirTemp("", "cleanroom-loadtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ixDir := c.index
	var ans answers
	ans.clean = "Here is an original answer.\n\n```c\nint add(int a, int b)\n{\n\treturn a + b;\n}\n```\n\n" +
		strings.Repeat("It adds two numbers and returns the sum, nothing more. ", 12)
	build := func() error { return nil }
	if ixDir == "" {
		ixDir = filepath.Join(tmp, "ix")
		build = func() error {
			texts, err := indextest.Build(ixDir, 7, indextest.Repo{Name: "gen", License: "GPL-2.0-only", Files: 200, Funcs: 6})
			if err == nil {
				lines := strings.SplitAfter(texts["gen"][3], "\n")
				ans.copied = "Sure:\n\n```c\n" + strings.Join(lines[5:min(45, len(lines))], "") + "```\n"
			}
			return err
		}
		if err := build(); err != nil {
			return err
		}
	} else {
		c.copied = 0 // no known copied text in an index we did not build
	}

	// The upstream.
	up := upstream.New()
	up.Wire = upstream.Wire{Pace: c.pace}
	up.Script = func(r *upstream.Request) ([]upstream.Reply, error) {
		if strings.HasPrefix(r.LastUser(), "copied") {
			return []upstream.Reply{{Content: ans.copied}}, nil
		}
		return []upstream.Reply{{Content: ans.clean}}, nil
	}
	upURL, stopUp, err := serve(up)
	if err != nil {
		return err
	}
	defer stopUp()

	// The proxy.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := proxy.New(proxy.Options{Index: ixDir, Upstream: upURL, Mode: "block", AuditLog: filepath.Join(tmp, "audit.jsonl"), Poll: -1}, quiet)
	if err != nil {
		return err
	}
	defer srv.Close()
	pxURL, stopPx, err := serve(srv.Handler())
	if err != nil {
		return err
	}
	defer stopPx()

	tr := &http.Transport{MaxIdleConns: c.clients * 2, MaxIdleConnsPerHost: c.clients * 2, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	fmt.Printf("loadtest: %d clients, %d-byte answers, upstream pace %v, GOMAXPROCS %d\n", c.clients, len(ans.clean), c.pace, runtime.GOMAXPROCS(0))

	fmt.Printf("baseline: %v straight to the upstream, after a %v warm-up\n", c.baseline, c.warmup)
	load(client, upURL, c, c.warmup, ans, false, nil)
	direct := load(client, upURL, c, c.baseline, ans, false, nil)
	tr.CloseIdleConnections()

	fmt.Printf("warm-up: %v through the proxy\n", c.warmup)
	load(client, pxURL, c, c.warmup, ans, true, nil)
	g0, h0 := settle(tr)

	fmt.Printf("load: %v through the proxy, %d index reloads\n", c.duration, c.reloads)
	var reloadErrs []error
	var reloaded atomic.Int64
	during := func(ctx context.Context) {
		if c.reloads == 0 {
			return
		}
		every := c.duration / time.Duration(c.reloads+1)
		t := time.NewTicker(every)
		defer t.Stop()
		for range c.reloads {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := build()
			if err == nil {
				err = srv.Reload()
			}
			if err != nil {
				reloadErrs = append(reloadErrs, err)
			} else {
				reloaded.Add(1)
			}
		}
	}
	px := load(client, pxURL, c, c.duration, ans, true, during)
	g1, h1 := settle(tr)

	report("direct", direct)
	report("proxy", px)
	fmt.Printf("added latency: first byte p50 %v, p99 %v; whole stream p50 %v, p99 %v\n",
		(px.ttfb.p(50) - direct.ttfb.p(50)).Round(time.Millisecond), (px.ttfb.p(99) - direct.ttfb.p(99)).Round(time.Millisecond),
		(px.total.p(50) - direct.total.p(50)).Round(time.Millisecond), (px.total.p(99) - direct.total.p(99)).Round(time.Millisecond))
	fmt.Printf("reloads: %d of %d succeeded\n", reloaded.Load(), c.reloads)
	fmt.Printf("goroutines: %d before, %d after (%+d)\n", g0, g1, g1-g0)
	fmt.Printf("heap in use: %.1f MiB before, %.1f MiB after (%+.1f MiB)\n", mib(h0), mib(h1), mib(h1)-mib(h0))
	st := up.Stats()
	fmt.Printf("upstream: %d requests, %d streams, at most %d at once, %d canceled by their client\n", st.Requests, st.Streams, st.MaxActive, st.Gone)
	var errs []string
	if n := direct.failed.Load() + px.failed.Load(); n > 0 {
		errs = append(errs, fmt.Sprintf("%d requests failed", n))
	}
	if len(reloadErrs) > 0 {
		errs = append(errs, fmt.Sprintf("%d reloads failed: %v", len(reloadErrs), reloadErrs[0]))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// serve serves h on a loopback port with the proxy's listener timeouts.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler(), slog.LevelWarn)}
	go s.Serve(ln)
	return "http://" + ln.Addr().String(), func() { s.Close() }, nil
}

// settle lets the clients' connections close and the garbage go, then counts the
// goroutines and the heap in use.
func settle(tr *http.Transport) (int, uint64) {
	tr.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// result is what one load phase measured.
type result struct {
	requests, failed, blocked atomic.Int64
	ttfb, total               durations
	firstErrs                 sync.Map // a few error messages, by kind
	elapsed                   time.Duration
}

type durations struct {
	mu sync.Mutex
	d  []time.Duration
}

func (d *durations) add(x time.Duration) {
	d.mu.Lock()
	d.d = append(d.d, x)
	d.mu.Unlock()
}

// p returns the q-th percentile.
func (d *durations) p(q int) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.d) == 0 {
		return 0
	}
	s := slices.Clone(d.d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*q/100)]
}

// load runs c.clients clients against base for d, each streaming one completion
// after another, and checks every answer. during runs meanwhile.
func load(client *http.Client, base string, c config, d time.Duration, ans answers, filtered bool, during func(context.Context)) *result {
	r := &result{}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	if during != nil {
		wg.Go(func() { during(ctx) })
	}
	start := time.Now()
	for i := range c.clients {
		wg.Go(func() {
			for j := 0; ctx.Err() == nil; j++ {
				copied := c.copied > 0 && (i+j)%c.copied == 0
				one(client, base, copied, filtered, ans, r)
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// one streams a completion and checks it: through the proxy (filtered), a copied
// answer must be blocked and a clean one pass unchanged; straight from the
// upstream, every answer must come whole.
func one(client *http.Client, base string, copied, filtered bool, ans answers, r *result) {
	user := "write an adder"
	if copied {
		user = "copied code please"
	}
	body := fmt.Sprintf(`{"model":"load","stream":true,"messages":[{"role":"user","content":%q}]}`, user)
	start := time.Now()
	r.requests.Add(1)
	fail := func(kind string, detail any) {
		r.failed.Add(1)
		r.firstErrs.LoadOrStore(kind, fmt.Sprint(detail))
	}
	resp, err := client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		fail("transport", err)
		return
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	if _, err := br.Peek(1); err != nil {
		fail("no body", err)
		return
	}
	r.ttfb.add(time.Since(start))
	raw, err := io.ReadAll(br)
	if err != nil {
		fail("read", err)
		return
	}
	r.total.add(time.Since(start))
	if resp.StatusCode != 200 {
		fail(fmt.Sprintf("status %d", resp.StatusCode), string(raw))
		return
	}
	content, finish, done, errEvent := parse(raw)
	switch {
	case errEvent != "":
		fail("error event", errEvent)
	case !done:
		fail("no [DONE]", len(raw))
	case !filtered && (finish != "stop" || content != map[bool]string{false: ans.clean, true: ans.copied}[copied]):
		fail("answer changed", finish)
	case !filtered:
	case !copied && (finish != "stop" || content != ans.clean):
		fail("clean answer changed", finish)
	case copied && finish != "content_filter":
		fail("copied answer not blocked", finish)
	case copied:
		r.blocked.Add(1)
	}
}

// parse reads a chat completion stream.
func parse(raw []byte) (content, finish string, done bool, errEvent string) {
	var sb strings.Builder
	for _, line := range bytes.Split(raw, []byte("\n")) {
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			done = true
			continue
		}
		var chunk struct {
			Error   json.RawMessage `json:"error"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(data, &chunk); err != nil {
			return "", "", false, "bad chunk: " + err.Error()
		}
		if chunk.Error != nil {
			return "", "", false, string(chunk.Error)
		}
		for _, ch := range chunk.Choices {
			sb.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	return sb.String(), finish, done, ""
}

func report(name string, r *result) {
	n := r.requests.Load()
	fmt.Printf("%-6s %6d requests (%.0f/s), %d failed, %d blocked; first byte p50 %v p99 %v; whole stream p50 %v p99 %v\n",
		name, n, float64(n)/r.elapsed.Seconds(), r.failed.Load(), r.blocked.Load(),
		r.ttfb.p(50).Round(time.Millisecond), r.ttfb.p(99).Round(time.Millisecond),
		r.total.p(50).Round(time.Millisecond), r.total.p(99).Round(time.Millisecond))
	r.firstErrs.Range(func(k, v any) bool {
		fmt.Printf("       error %s: %.300s\n", k, v)
		return true
	})
}
