package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/proxy"
)

// A fastUpstream streams one pre-rendered chat completion as fast as the
// connection takes it, each event written and flushed on its own: the cheapest
// upstream there is, so that what a proxy adds shows. With HoldHeader it stops
// after holdAfter events until release is closed.
type fastUpstream struct {
	events    [][]byte
	content   string
	holdAfter int
	mu        sync.Mutex
	release   chan struct{}
	held      atomic.Int64
}

const (
	holdHeader  = "X-Bench-Hold"
	pacedHeader = "X-Bench-Paced"
	pacedEvents = 20
	pacedGap    = time.Millisecond
)

// newFastUpstream renders content as chat.completion.chunk events of 1 to 3
// tokens each, as models stream.
func newFastUpstream(content string) *fastUpstream {
	u := &fastUpstream{content: content, release: make(chan struct{})}
	ev := func(delta, finish string) []byte {
		return fmt.Appendf(nil, `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}`+"\n\n", delta, finish)
	}
	u.events = append(u.events, ev(`{"role":"assistant","content":""}`, "null"))
	for _, p := range pieces(content, 1) {
		b, _ := json.Marshal(map[string]string{"content": p})
		u.events = append(u.events, ev(string(b), "null"))
	}
	u.events = append(u.events, ev(`{}`, `"stop"`), []byte("data: [DONE]\n\n"))
	u.holdAfter = len(u.events) / 2
	return u
}

// pieces cuts text after every 1 to 3 tokens (markdown tokenization), each piece
// carrying the whitespace before its next token, as model deltas do.
func pieces(text string, seed uint64) []string {
	toks := fingerprint.Tokenize(fingerprint.Markdown, []byte(text))
	rng := rand.New(rand.NewPCG(seed, 3))
	var out []string
	prev := 0
	for i := 0; i < len(toks); {
		i += 1 + rng.IntN(3)
		end := len(text)
		if i < len(toks) {
			end = int(toks[i].Off)
		}
		out = append(out, text[prev:end])
		prev = end
	}
	if prev < len(text) {
		out = append(out, text[prev:])
	}
	return out
}

func (u *fastUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f := w.(http.Flusher)
	hold := r.Header.Get(holdHeader) != ""
	u.mu.Lock()
	release := u.release
	u.mu.Unlock()
	events := u.events
	paced := r.Header.Get(pacedHeader) != ""
	if paced {
		// A model's pace, fast: the first events, 1 ms apart, then the end.
		events = append(append([][]byte(nil), u.events[:pacedEvents]...), u.events[len(u.events)-2:]...)
	}
	for i, e := range events {
		if paced && i > 0 {
			time.Sleep(pacedGap)
		}
		if hold && i == u.holdAfter {
			u.held.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := w.Write(e); err != nil {
			return
		}
		f.Flush()
	}
}

// A target is one way to reach the upstream: directly, through a plain
// httputil.ReverseProxy, or through cleanroom.
type target struct {
	name   string
	url    string
	client *http.Client
	close  func()
	api    *benchAPI // the API it is asked in; nil: chat completions
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}}
}

func targets(c *config, up *httptest.Server) ([]*target, error) {
	u, _ := url.Parse(up.URL)
	plainRP := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Read the request body before forwarding it, as cleanroom does: the
			// server closes an inbound body once the response begins, and a
			// transport still reading it then drops the upstream connection
			// mid-response (golang/go#40747).
			body, _ := io.ReadAll(pr.In.Body)
			pr.Out.Body = io.NopCloser(bytes.NewReader(body))
			pr.Out.ContentLength = int64(len(body))
		},
		FlushInterval: -1, // flush every event, as a streaming gateway must
		Transport:     &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
		ErrorLog:      nil,
	}
	plain := httptest.NewServer(plainRP)
	ts := []*target{
		{name: "direct", url: up.URL, client: newClient(), close: func() {}},
		{name: "plain ReverseProxy", url: plain.URL, client: newClient(), close: plain.Close},
	}
	for _, mode := range []string{"annotate", "block"} {
		s, err := proxy.New(proxy.Options{Index: c.index, Upstream: up.URL, Mode: mode, AuditLog: os.DevNull},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return nil, err
		}
		hs := httptest.NewServer(s.Handler())
		ts = append(ts, &target{name: "cleanroom " + mode, url: hs.URL, client: newClient(), close: func() { hs.Close(); s.Close() }})
	}
	return ts, nil
}

var chatRequest = []byte(`{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"Write an HTTP server."}]}`)

// complete makes one streaming completion and returns its time to first byte
// and the body.
func (t *target) complete(hold bool) (time.Duration, []byte, error) { return t.request(hold, false) }

// request makes one streaming completion, held halfway or paced (see fastUpstream).
func (t *target) request(hold, paced bool) (time.Duration, []byte, error) {
	api := t.api
	if api == nil {
		api = chatAPI
	}
	req, _ := http.NewRequest(http.MethodPost, t.url+api.path, bytes.NewReader(api.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-bench")
	if hold {
		req.Header.Set(holdHeader, "1")
	}
	if paced {
		req.Header.Set(pacedHeader, "1")
	}
	start := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		return 0, nil, fmt.Errorf("%s: %v", t.name, err)
	}
	ttfb := time.Since(start)
	// A held stream's body is not kept: what the client holds would be counted
	// as the proxy's memory. Its end is checked all the same.
	var body io.Writer = &tailWriter{}
	var whole bytes.Buffer
	if !hold {
		body = &whole
	}
	body.Write(first)
	if _, err := io.Copy(body, resp.Body); err != nil {
		return 0, nil, fmt.Errorf("%s: %v", t.name, err)
	}
	end := whole.Bytes()
	if hold {
		end = body.(*tailWriter).b
	}
	if resp.StatusCode != 200 || !bytes.HasPrefix(end[max(0, bytes.LastIndex(end, []byte("\n\n"+string(api.end[:6])))+2):], api.end) &&
		!bytes.HasSuffix(end, api.end) {
		return 0, nil, fmt.Errorf("%s: status %d, body ends %q", t.name, resp.StatusCode, tail(end))
	}
	return ttfb, whole.Bytes(), nil
}

func tail(b []byte) []byte { return b[max(0, len(b)-80):] }

// A tailWriter keeps the last bytes written to it.
type tailWriter struct{ b []byte }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > 256 {
		w.b = append(w.b[:0], w.b[len(w.b)-80:]...)
	}
	return len(p), nil
}

// gateway compares cleanroom with a plain ReverseProxy on one fast upstream:
// time to first byte one request at a time, throughput under concurrent load,
// both in alternating rounds; and the memory each open stream costs.
func gateway(c *config, r *report) error {
	content, fu, up, ts, err := cleanGateway(c)
	if err != nil {
		return err
	}
	defer up.Close()
	defer func() {
		for _, t := range ts {
			t.close()
		}
	}()
	// Every target must deliver the content intact (clean text: nothing to block).
	for _, t := range ts {
		_, body, err := t.complete(false)
		if err != nil {
			return err
		}
		if got := contentOf(body); got != content {
			return fmt.Errorf("%s changed the content (%d bytes, want %d)", t.name, len(got), len(content))
		}
	}
	proxies := ts                   // direct too: the floor under every figure
	ttfb := map[string][]float64{}  // paced upstream
	flood := map[string][]float64{} // upstream at full speed
	thr := map[string][]float64{}
	const conc = 8
	for round := range c.rounds + 1 {
		for i := range proxies {
			t := proxies[(i+round)%len(proxies)]
			// Time to first byte, one request at a time.
			var tt, tf []float64
			for j := range 100 {
				d, _, err := t.request(false, j%2 == 0)
				if err != nil {
					return fmt.Errorf("round %d, time to first byte: %w", round, err)
				}
				if j%2 == 0 {
					tt = append(tt, float64(d.Nanoseconds()))
				} else {
					tf = append(tf, float64(d.Nanoseconds()))
				}
			}
			// Throughput: conc clients back to back for a second.
			n, err := load(t, conc, time.Second)
			if err != nil {
				return fmt.Errorf("round %d, throughput: %w", round, err)
			}
			if round > 0 { // round 0 warms up
				ttfb[t.name] = append(ttfb[t.name], tt...)
				flood[t.name] = append(flood[t.name], tf...)
				thr[t.name] = append(thr[t.name], n)
			}
		}
	}
	events := len(fu.events)
	s := r.section("Gateway", fmt.Sprintf(
		"cleanroom (`proxy.New`, the kernel index, no policy file) and a plain `httputil.ReverseProxy` (`FlushInterval: -1`, flushing "+
			"every event) in front of the same in-process upstream, which streams a %d-token markdown answer of clean code (Go's "+
			"net/http/server.go) in %d events of 1 to 3 tokens, each written and flushed as fast as the connection takes it. "+
			"Clients, proxies and upstream share the machine's %d cores over loopback TCP. %d rounds after a warm-up, the targets' order "+
			"rotating each round; a round measures time to first byte over 100 sequential completions, then completions per second "+
			"with %d concurrent clients for 1 s. Every completion is checked to end in `[DONE]`, and the content to arrive intact. "+
			"The Responses and Messages rows stream the same content in those APIs' events (one `response.output_text.delta` or "+
			"`content_block_delta` per chat event, the Responses done events repeating the text whole), measured the same way "+
			"(throughput only) in rounds of their own.\n\n"+
			"Time to first byte is measured two ways, alternating: with the upstream at a model's pace (a fast one: %d events %v apart, "+
			"then the end), which is what a user waits for; and with the upstream at full speed, where the first byte competes for "+
			"the 2 cores with the rest of the flood that the proxy is already filtering (it measures CPU, not latency; plain "+
			"ReverseProxy's own first byte is some 2 ms later than the upstream's there).",
		len(fingerprint.Tokenize(fingerprint.Markdown, []byte(content))), events, runtime.NumCPU(), c.rounds, conc, pacedEvents, pacedGap))
	plainThr := median(thr["plain ReverseProxy"])
	ms := func(ns float64) string { return fmt.Sprintf("%.3f ms", ns/1e6) }
	p5099 := func(v []float64) string {
		return fmt.Sprintf("p50 %s, p99 %s", ms(percentile(v, 50)), ms(percentile(v, 99)))
	}
	s.row("direct to the upstream: completions/s", fmt.Sprintf("%.0f", median(thr["direct"])), "", "", true, "")
	s.row("direct to the upstream: time to first byte, paced", p5099(ttfb["direct"]), "full speed: "+p5099(flood["direct"]), "", true, "")
	s.row("plain ReverseProxy: completions/s", fmt.Sprintf("%.0f (%.1f MB/s of content)", plainThr, plainThr*float64(len(content))/1e6), "", "", true, "")
	s.row("plain ReverseProxy: time to first byte, paced", p5099(ttfb["plain ReverseProxy"]), "full speed: "+p5099(flood["plain ReverseProxy"]), "", true, "")
	for _, mode := range []string{"annotate", "block"} {
		name := "cleanroom " + mode
		t, ratio := median(thr[name]), median(thr[name])/plainThr
		want := map[string]float64{"annotate": 0.8, "block": 0.7}[mode]
		s.row(name+": completions/s", fmt.Sprintf("%.0f (%.2fx)", t, ratio), fmt.Sprintf("plain: %.0f", plainThr),
			fmt.Sprintf(">= %.1fx", want), ratio >= want, pct(ratio, want))
		for _, m := range []struct {
			what  string
			v     map[string][]float64
			judge bool
		}{{"paced", ttfb, mode == "annotate"}, {"full speed", flood, false}} {
			plainP99 := percentile(m.v["plain ReverseProxy"], 99)
			added := percentile(m.v[name], 99) - plainP99
			target, met := "", true
			if m.judge {
				target, met = "added p99 <= 1 ms", added <= 1e6
			}
			s.row(name+": time to first byte, "+m.what, fmt.Sprintf("%s (p99 %+.3f ms)", p5099(m.v[name]), added/1e6),
				"plain: "+p5099(m.v["plain ReverseProxy"]), target, met, over(added, 1e6))
		}
	}
	if err := gatewayFormats(c, s, content); err != nil {
		return err
	}
	if median(thr["cleanroom annotate"])/plainThr < 0.8 || median(thr["cleanroom block"])/plainThr < 0.7 {
		// Two more seconds of load through cleanroom in block mode, profiled.
		var block *target
		for _, t := range ts {
			if t.name == "cleanroom block" {
				block = t
			}
		}
		const pprofArgs = `-cum -focus=proxy\.\(\*streamFilter\)\.Read -hide=^(net/http|runtime|internal|syscall|io)[./]`
		top, err := profiled(c, "gateway-block", func() error {
			_, err := load(block, conc, 2*time.Second)
			return err
		}, strings.Fields(pprofArgs)...)
		if err != nil {
			return err
		}
		s.note("Where cleanroom's time goes, per event: reading the upstream's bytes and writing the client's (as the plain " +
			"ReverseProxy does: the system calls at the top), splitting the events (`sseReader.feed`), reading each chunk " +
			"(`chunkShape.read`: a chunk that differs from the one before only in its text is read by reading that string), " +
			"the detector (tokenizing, winnowing, looking fingerprints up, and in block mode asking the k-gram filter about " +
			"every k-gram), and an allocation or three per event (the event, its bytes, its text).")
		profileNote(s, "CPU profile of 2 s of the load through cleanroom in block mode, the samples under the filter's `Read` "+
			"(what cleanroom adds to a ReverseProxy), by cumulative time",
			filepath.Join(c.out, "gateway-block.prof"), "go tool pprof -top "+pprofArgs, top)
	}
	return streamMemory(c, s, fu, ts)
}

// cleanGateway sets up what the gateway figures measure: a 2,000-token clean
// answer (Go's net/http/server.go), a fast upstream streaming it, and the targets
// in front of that upstream.
func cleanGateway(c *config) (string, *fastUpstream, *httptest.Server, []*target, error) {
	src, err := goSource("net/http/server.go")
	if err != nil {
		return "", nil, nil, nil, err
	}
	content, err := excerpt(fingerprint.Go, src, 3000, 2000)
	if err != nil {
		return "", nil, nil, nil, err
	}
	fu := newFastUpstream(content)
	up := httptest.NewServer(fu)
	ts, err := targets(c, up)
	if err != nil {
		up.Close()
		return "", nil, nil, nil, err
	}
	return content, fu, up, ts, nil
}

// load runs conc clients making completions back to back for d and returns the
// completions per second.
func load(t *target, conc int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, _, err := t.complete(false); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// contentOf joins the content deltas of a chat completion stream.
func contentOf(body []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &ev) == nil {
			for _, ch := range ev.Choices {
				b.WriteString(ch.Delta.Content)
			}
		}
	}
	return b.String()
}

// streamMemory opens many streams that stop halfway (the upstream holds them)
// through each target and measures the heap and stacks they hold; the direct
// streams' cost (client and upstream) is subtracted from the proxies'.
func streamMemory(c *config, s *section, fu *fastUpstream, ts []*target) error {
	const streams = 200
	// Sample allocations finely enough for the heap profile of 200 streams (set
	// only now: sampling costs, and the throughput figures are taken).
	runtime.MemProfileRate = 16 << 10
	perStream := map[string]float64{}
	stacks := map[string]float64{}
	var heapTop string
	var err error
	for _, t := range ts {
		fu.mu.Lock()
		fu.release = make(chan struct{})
		release := fu.release
		fu.mu.Unlock()
		fu.held.Store(0)
		for _, x := range ts {
			x.client.CloseIdleConnections()
		}
		before, stackBefore := inUse()
		errs := make(chan error, streams)
		for range streams {
			go func() {
				_, _, err := t.complete(true)
				errs <- err
			}()
		}
		for fu.held.Load() < streams {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // the proxies take in what was flushed before the hold
		after, stackAfter := inUse()
		if c.memprofile != "" && strings.HasPrefix(t.name, "cleanroom ") {
			if f, err := os.Create(c.memprofile + "." + strings.TrimPrefix(t.name, "cleanroom ")); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		if t.name == "cleanroom block" {
			if heapTop, err = heapProfile(c, "streams-block", `proxy\.\(\*Server\)\.serve`); err != nil {
				return err
			}
		}
		close(release)
		for range streams {
			if err := <-errs; err != nil {
				return fmt.Errorf("memory per stream: %w", err)
			}
		}
		perStream[t.name] = float64(after-before) / streams
		stacks[t.name] = (float64(stackAfter) - float64(stackBefore)) / streams
	}
	direct := perStream["direct"]
	s.note("Memory per open stream: %d streams held open halfway through (%d of %d events sent) through each target; heap in use "+
		"plus goroutine stacks after a GC, minus the same before they opened, per stream. Direct to the upstream (client and upstream "+
		"only): %s per stream; what each proxy adds to that is in the table.", streams, fu.holdAfter, len(fu.events), kib(int64(direct)))
	plain := perStream["plain ReverseProxy"] - direct
	s.row("plain ReverseProxy: memory per open stream", kib(int64(plain)), "", "", true, "")
	for _, mode := range []string{"annotate", "block"} {
		v := perStream["cleanroom "+mode] - direct
		s.row("cleanroom "+mode+": memory per open stream", fmt.Sprintf("%s (stacks %s)", kib(int64(v)), kib(int64(stacks["cleanroom "+mode]-stacks["direct"]))),
			fmt.Sprintf("plain: %s (stacks %s)", kib(int64(plain)), kib(int64(stacks["plain ReverseProxy"]-stacks["direct"]))),
			"<= 64 KiB", v <= 64<<10, over(v, 64<<10))
	}
	if perStream["cleanroom block"]-direct > 64<<10 {
		s.note("Where the memory goes: a plain ReverseProxy's stream already holds some %s (its goroutines' stacks, the "+
			"connections' buffers on both sides, the copy buffer); cleanroom's 8 KiB copy buffer is smaller, and it keeps no read "+
			"buffer of its own, but block mode's detector keeps every token of the answer so far (24 bytes each, with room to "+
			"grow, plus fingerprints, per-token check values and echo marks: about 30 bytes a token), and the events held back. "+
			"Annotate mode gives the detector the text only at the end, and keeps the text alone meanwhile.", kib(int64(plain)))
		profileNote(s, "Heap in use with the streams open in block mode, the allocation sites under `Server.serve` (each "+
			"stream's own memory, the index aside)",
			filepath.Join(c.out, "streams-block.heap"), `go tool pprof -sample_index=inuse_space -top -focus='proxy\.\(\*Server\)\.serve'`, heapTop)
	}
	return nil
}

// inUse returns the heap and stacks in use after a GC, and the stacks alone.
func inUse() (all, stacks uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, m.StackInuse
}
