// Package proxy is cleanroom's gateway: a reverse proxy in front of an
// OpenAI-compatible completion API that fingerprints the model's output as it streams,
// looks it up in the index, and blocks or annotates copyleft duplicates.
package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cleanroom/index"
)

// Options configure a Server. Every option has a flag and an environment variable
// (CLEANROOM_ and the flag's name in upper case, dashes as underscores).
type Options struct {
	Index    string // index directory (required)
	Upstream string // base URL of the OpenAI-compatible API (required)
	Listen   string // default ":8080"
	// Mode is the action for matches the policy file does not name: "block"
	// (default) or "annotate".
	Mode       string
	PolicyFile string        // YAML: actions by license and an allowlist (see Policy)
	AuditLog   string        // file to append the audit log to; "-" for stdout (default)
	MaxBody    int64         // largest request body accepted, bytes; default 16 MiB
	MaxEvent   int           // largest upstream event, bytes; default 16 MiB
	Poll       time.Duration // how often to look for a new index manifest; default 5s, 0 never
	Match      index.MatchOptions
	// FailOpen lets the proxy start without a loadable index and pass completions
	// through unchecked until one loads, rather than refuse to start. It is off by
	// default: a gateway that promised to filter must not serve unfiltered unless
	// its operator chose so. The cleanroom_fail_open gauge is 1 meanwhile.
	FailOpen bool

	// AdminListen, when set, is a second address that serves /metrics, /healthz,
	// /readyz and POST /admin/reload; the public listener then serves no /metrics.
	// Without it the public listener serves /metrics, /healthz and /readyz, and
	// there is no reload over HTTP (SIGHUP only).
	AdminListen string
	// TLSCert and TLSKey, both set, serve the public listener (and the admin one)
	// over TLS with this PEM certificate chain and key.
	TLSCert, TLSKey string
	// UpstreamCA is a PEM file of certificates to trust for an https upstream, in
	// place of the system's roots. The upstream's certificate is always verified
	// unless UpstreamInsecure is set.
	UpstreamCA       string
	UpstreamInsecure bool
	// UpstreamTimeout bounds the wait for the upstream's response headers (its first
	// byte); IdleTimeout bounds a wait for the next byte of its body: a stream that
	// stalls longer ends with an error event. Defaults 5m and 60s; negative: none.
	UpstreamTimeout time.Duration
	StreamIdle      time.Duration
	// IndexTimeout bounds one lookup in a Redis Cluster index. Default 1s.
	IndexTimeout time.Duration
	// IndexCacheMB bounds the documents of a Redis Cluster index the proxy keeps
	// in memory, in MiB. Default 256.
	IndexCacheMB int
	// MaxReply is the most bytes of a completion response the proxy reads from the
	// upstream; a longer reply ends with an error. Default 64 MiB.
	MaxReply int64
	// ReadHeaderTimeout, BodyTimeout and IdleConnTimeout protect the listener from
	// slow clients: the time to send the request headers, the body of a completion
	// request, and how long a kept-alive connection may stay idle. Defaults 10s, 60s,
	// 120s.
	ReadHeaderTimeout time.Duration
	BodyTimeout       time.Duration
	IdleConnTimeout   time.Duration
	// Rename matches renamed copies too (code copied with its identifiers renamed
	// consistently), as indexer scan --rename does: it needs a local index built with
	// --rename. Its runs are longer (the index's rename-robust threshold, 50 tokens
	// by default), so block mode holds text back for that many, and the k-gram
	// filter's shorter holdback is off. Off by default.
	Rename bool
	// Passthrough lists paths (as /v1/assistants, or /v1/threads/* for every path
	// under /v1/threads/) of requests the proxy would refuse, neither a generation
	// endpoint it checks nor a known pass-through, that it passes on UNCHECKED
	// instead. Empty by default.
	Passthrough []string
	// ModelDirs are the directories of the models the upstream serves, in the
	// Hugging Face layout (a snapshot directory with README.md, a models--ORG--NAME
	// directory of the hub cache, or a cache holding them): their cards are read at
	// start and on reload, and compared with the policy's license reviews.
	ModelDirs []string
}

// Flags registers the options as flags, defaulting to the environment.
func (o *Options) Flags(fs *flag.FlagSet) {
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, envOr(name, def), usage+" ($"+envName(name)+")")
	}
	str(&o.Index, "index", "", "index `directory`, or the Redis Cluster that holds it: redis://HOST:PORT[,HOST:PORT...][/PREFIX] (rediss:// for TLS)")
	str(&o.Upstream, "upstream", "", "base `URL` of the OpenAI-compatible API, e.g. http://127.0.0.1:8000")
	str(&o.Listen, "listen", ":8080", "`address` to listen on")
	str(&o.Mode, "mode", "block", "action for matches the policy does not name: block or annotate")
	str(&o.PolicyFile, "policy", "", "policy `file` (YAML): actions by license, allowlist")
	str(&o.AuditLog, "audit-log", "-", "`file` to append the audit log of matches to (JSON lines); - for stdout")
	maxBody, _ := strconv.ParseInt(envOr("max-body", "16777216"), 10, 64)
	fs.Int64Var(&o.MaxBody, "max-body", maxBody, "largest request body, in bytes ($"+envName("max-body")+")")
	poll, err := time.ParseDuration(envOr("poll", "5s"))
	if err != nil {
		poll = 5 * time.Second
	}
	fs.DurationVar(&o.Poll, "poll", poll, "how often to look for a rebuilt index; 0 to reload only on SIGHUP ($"+envName("poll")+")")
	minTokens, _ := strconv.Atoi(envOr("min-tokens", "0"))
	fs.IntVar(&o.Match.MinTokens, "min-tokens", minTokens, "act only on matches of at least this many tokens (default and minimum: the index's threshold) ($"+envName("min-tokens")+")")
	failOpen, _ := strconv.ParseBool(envOr("fail-open", "false"))
	fs.BoolVar(&o.FailOpen, "fail-open", failOpen, "start without a loadable index and pass completions through UNCHECKED until one loads ($"+envName("fail-open")+")")
	str(&o.AdminListen, "admin-listen", "", "`address` for /metrics, /healthz, /readyz and POST /admin/reload; when set, /metrics leaves the public listener")
	str(&o.TLSCert, "tls-cert", "", "serve TLS with this PEM certificate `file` (with --tls-key)")
	str(&o.TLSKey, "tls-key", "", "serve TLS with this PEM private key `file` (with --tls-cert)")
	str(&o.UpstreamCA, "upstream-ca", "", "PEM `file` of the CA certificates to trust for an https upstream (default: the system's)")
	insecure, _ := strconv.ParseBool(envOr("upstream-insecure-skip-verify", "false"))
	fs.BoolVar(&o.UpstreamInsecure, "upstream-insecure-skip-verify", insecure, "do NOT verify the upstream's TLS certificate ($"+envName("upstream-insecure-skip-verify")+")")
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		d, err := time.ParseDuration(envOr(name, def.String()))
		if err != nil {
			d = def
		}
		fs.DurationVar(p, name, d, usage+" ($"+envName(name)+")")
	}
	cacheMB, _ := strconv.Atoi(envOr("index-cache-mb", "256"))
	fs.IntVar(&o.IndexCacheMB, "index-cache-mb", cacheMB, "MiB of indexed documents a proxy on a Redis Cluster index keeps in memory ($"+envName("index-cache-mb")+")")
	dur(&o.IndexTimeout, "index-timeout", time.Second, "longest a lookup in a Redis Cluster index may take; a response whose lookup fails is cut with an error, or passes unchecked with --fail-open")
	dur(&o.UpstreamTimeout, "upstream-timeout", 5*time.Minute, "longest wait for the upstream's response headers")
	dur(&o.StreamIdle, "upstream-idle-timeout", time.Minute, "longest wait for the next byte of an upstream response: a stream that stalls longer ends with an error")
	maxReply, _ := strconv.ParseInt(envOr("max-reply", "67108864"), 10, 64)
	fs.Int64Var(&o.MaxReply, "max-reply", maxReply, "most bytes of a completion read from the upstream ($"+envName("max-reply")+")")
	dur(&o.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "longest a client may take to send its request headers")
	dur(&o.BodyTimeout, "body-timeout", time.Minute, "longest a client may take to send the body of a completion request")
	dur(&o.IdleConnTimeout, "idle-timeout", 2*time.Minute, "how long a kept-alive client connection may stay idle")
	rename, _ := strconv.ParseBool(envOr("rename", "false"))
	fs.BoolVar(&o.Rename, "rename", rename, "match renamed copies too (needs a local index built with --rename; longer holdback) ($"+envName("rename")+")")
	if v := envOr("passthrough", ""); v != "" {
		o.Passthrough = strings.Split(v, ",")
	}
	if v := envOr("model-dir", ""); v != "" {
		o.ModelDirs = strings.Split(v, ",")
	}
	fs.Func("model-dir", "read the model card of this `directory` (a Hugging Face snapshot, models--ORG--NAME, or a hub cache) at start and on reload, and refuse or flag a model whose card changed since its license review (repeatable; $"+envName("model-dir")+", comma-separated)", func(d string) error {
		o.ModelDirs = append(o.ModelDirs, d)
		return nil
	})
	fs.Func("passthrough", "pass requests for this `path` (a trailing * matches any rest) on UNCHECKED though cleanroom does not check them (repeatable; $"+envName("passthrough")+", comma-separated)", func(p string) error {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("%q: a path starts with /", p)
		}
		o.Passthrough = append(o.Passthrough, p)
		return nil
	})
}

func envName(flag string) string {
	return "CLEANROOM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func envOr(flag, def string) string {
	if v, ok := os.LookupEnv(envName(flag)); ok {
		return v
	}
	return def
}

// A Server is the gateway. Its Handler serves the proxied API, /metrics, /healthz,
// /readyz and /v1/cleanroom/index.
type Server struct {
	opts     Options
	upstream *url.URL
	policy   *Policy
	store    *store
	metrics  *metrics
	log      *slog.Logger
	audit    *auditLog
	rp       *httputil.ReverseProxy
	mux      *http.ServeMux
	admin    *http.ServeMux // nil unless Options.AdminListen is set
	stop     chan struct{}
}

type ctxKey struct{}

// New checks the options and loads the index. It fails when the index cannot be
// loaded, a gateway that promised to filter must not serve unfiltered, unless
// opts.FailOpen is set.
func New(opts Options, log *slog.Logger) (*Server, error) {
	if opts.Index == "" || opts.Upstream == "" {
		return nil, errors.New("both --index and --upstream are required")
	}
	u, err := url.Parse(opts.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--upstream %q is not an http(s) URL", opts.Upstream)
	}
	if opts.Mode == "" {
		opts.Mode = "block"
	}
	def, err := ParseAction(opts.Mode)
	if err != nil || def == Allow {
		return nil, fmt.Errorf("--mode %q: want block or annotate", opts.Mode)
	}
	policy := NewPolicy(def)
	if opts.PolicyFile != "" {
		if policy, err = LoadPolicy(opts.PolicyFile, def); err != nil {
			return nil, err
		}
	}
	opts.Match.MinTokens = max(opts.Match.MinTokens, policy.MinTokens)
	if opts.MaxBody <= 0 {
		opts.MaxBody = 16 << 20
	}
	if opts.MaxEvent <= 0 {
		opts.MaxEvent = 16 << 20
	}
	if opts.MaxReply <= 0 {
		opts.MaxReply = 64 << 20
	}
	opts.UpstreamTimeout = durationOr(opts.UpstreamTimeout, 5*time.Minute)
	opts.StreamIdle = durationOr(opts.StreamIdle, time.Minute)
	opts.IndexTimeout = durationOr(opts.IndexTimeout, time.Second)
	opts.BodyTimeout = durationOr(opts.BodyTimeout, time.Minute)
	opts.ReadHeaderTimeout = durationOr(opts.ReadHeaderTimeout, 10*time.Second)
	opts.IdleConnTimeout = durationOr(opts.IdleConnTimeout, 2*time.Minute)
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	transport, err := newTransport(opts)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	audit, err := openAudit(opts.AuditLog)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, upstream: u, policy: policy, store: &store{dir: opts.Index, lookupTimeout: opts.IndexTimeout, cacheBytes: int64(opts.IndexCacheMB) << 20, rename: opts.Rename}, metrics: newMetrics(),
		log: log, audit: audit, stop: make(chan struct{})}
	s.metrics.knowModels(policy.Models)
	if err := s.loadCards(); err != nil {
		audit.close()
		return nil, err
	}
	if err := s.reloadIndex(); err != nil {
		if !opts.FailOpen {
			audit.close()
			return nil, err
		}
		s.metrics.failOpen.Set(1)
		log.Error("no index: completions pass through UNCHECKED until one loads (--fail-open)", "dir", opts.Index, "err", err)
	}
	s.rp = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		ModifyResponse: s.modifyResponse,
		ErrorHandler:   s.proxyError,
		FlushInterval:  -1,
		BufferPool:     &copyBuffers,
		Transport:      transport,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.mux = http.NewServeMux()
	metricsHandler := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	healthz := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }
	if opts.AdminListen != "" {
		// Operations get a listener of their own: the public one answers /metrics
		// itself (never passing it to the upstream) but tells nothing, and has no
		// reload.
		s.admin = http.NewServeMux()
		s.admin.Handle("GET /metrics", metricsHandler)
		s.admin.HandleFunc("GET /healthz", healthz)
		s.admin.HandleFunc("GET /readyz", s.readyz)
		s.admin.HandleFunc("POST /admin/reload", s.adminReload)
		s.admin.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "invalid_request_error", "not_found",
				"the admin listener serves GET /metrics, /healthz, /readyz and POST /admin/reload")
		})
		s.mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "metrics are served on the admin listener")
		})
	} else {
		s.mux.Handle("GET /metrics", metricsHandler)
	}
	s.mux.HandleFunc("GET /healthz", healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc(IndexPath, s.indexInfo)
	s.mux.HandleFunc("/v1/cleanroom/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "cleanroom serves "+IndexPath+" only under /v1/cleanroom/")
	})
	s.mux.HandleFunc("/", s.serve)
	if opts.Poll > 0 {
		go s.poll(opts.Poll)
	}
	return s, nil
}

// Options returns the options the server runs with, defaults filled in: those of
// the listener (timeouts) are for the caller's http.Server.
func (s *Server) Options() Options { return s.opts }

// durationOr returns d, or def when d is zero; a negative d means none (0).
func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// newTransport returns the transport to the upstream. An https upstream's
// certificate is verified, against opts.UpstreamCA when set, else the system's
// roots, unless the operator turned verification off.
func newTransport(opts Options) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true // the proxy strips Accept-Encoding where it must read the body
	t.MaxIdleConnsPerHost = 256
	t.ResponseHeaderTimeout = opts.UpstreamTimeout
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.UpstreamCA != "" {
		pem, err := os.ReadFile(opts.UpstreamCA)
		if err != nil {
			return nil, fmt.Errorf("--upstream-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--upstream-ca %s: no PEM certificate in it", opts.UpstreamCA)
		}
		tc.RootCAs = pool
	}
	tc.InsecureSkipVerify = opts.UpstreamInsecure
	t.TLSClientConfig = tc
	return t, nil
}

// Handler returns the server's public HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// AdminHandler returns the handler of the admin listener (Options.AdminListen), or
// nil when there is none.
func (s *Server) AdminHandler() http.Handler {
	if s.admin == nil {
		return nil
	}
	return s.admin
}

// adminReload reloads the index, as SIGHUP does, and says how it went.
func (s *Server) adminReload(w http.ResponseWriter, r *http.Request) {
	if err := s.Reload(); err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "reload_failed",
			"the reload failed; the index and model cards loaded before are still served: "+err.Error())
		return
	}
	io.WriteString(w, "reloaded\n")
}

// Close stops reloading and releases the index.
func (s *Server) Close() {
	close(s.stop)
	s.store.close()
	s.audit.close()
}

// Reload reads the model cards of --model-dir and loads the index again, as
// SIGHUP does. On failure the proxy keeps serving the index (and the cards) it has.
func (s *Server) Reload() error {
	cerr := s.loadCards()
	if err := s.reloadIndex(); err != nil {
		return err
	}
	return cerr
}

// reloadIndex loads the index again.
func (s *Server) reloadIndex() error {
	ix, took, err := s.store.load()
	if err != nil {
		s.metrics.reloads.WithLabelValues("failure").Inc()
		if index.IsRedisURL(s.opts.Index) {
			s.metrics.storeErrors.WithLabelValues("load").Inc()
		}
		s.log.Error("index load failed", "dir", s.opts.Index, "err", err)
		return err
	}
	m := ix.Meta()
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.metrics.indexDocs.Set(float64(ix.NumDocs()))
	s.metrics.indexFPs.Set(float64(ix.NumPostings()))
	s.metrics.indexShards.Set(float64(len(m.Shards)))
	s.metrics.indexBytes.Set(float64(m.Totals.Disk))
	s.metrics.indexLoad.Set(took.Seconds())
	s.metrics.indexBuilt.Set(float64(m.Created.Unix()))
	s.metrics.indexGen.Reset()
	s.metrics.indexGen.WithLabelValues(m.Build).Set(1)
	s.metrics.indexLoaded.SetToCurrentTime()
	s.metrics.ready.Set(1)
	if s.opts.FailOpen {
		s.metrics.failOpen.Set(0)
	}
	s.log.Info("index loaded", "dir", s.opts.Index, "build", m.Build, "docs", ix.NumDocs(),
		"fingerprints", ix.NumPostings(), "shards", len(m.Shards), "took", took.Round(time.Millisecond).String())
	return nil
}

// poll reloads the index when its manifest changes (a rebuild finished).
func (s *Server) poll(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.store.changed() {
				s.Reload()
			}
		}
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if l := s.store.acquire(); l != nil {
		s.store.release(l)
		io.WriteString(w, "ready\n")
		return
	}
	if s.opts.FailOpen {
		// Serving, unchecked: taking the proxy out of rotation would defeat the choice.
		io.WriteString(w, "ready, fail-open: no index is loaded and completions pass unchecked\n")
		return
	}
	writeError(w, http.StatusServiceUnavailable, "server_error", "index_unavailable", "no index is loaded")
}

// serve handles every proxied request: completions are filtered, the rest passes.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	fm := formatOf(r)
	if fm == nil {
		if !s.passes(w, r) {
			return
		}
		if s.gatePassThrough(w, r) {
			s.rp.ServeHTTP(w, modelsRequest(r))
		}
		return
	}
	endpoint := fm.name
	rid := r.Header.Get("X-Request-Id")
	if rid == "" || len(rid) > 128 {
		var b [12]byte
		rand.Read(b[:])
		rid = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", rid)
	l := s.store.acquire()
	if l == nil && !s.opts.FailOpen {
		s.metrics.requests.WithLabelValues(endpoint, "unknown", "unavailable").Inc()
		fm.writeError(w, http.StatusServiceUnavailable, "server_error", "index_unavailable", "",
			"cleanroom has no index loaded, so it cannot check completions; try again later")
		return
	}
	if l != nil {
		defer s.store.release(l)
	}
	// A client that sends its body slowly holds a connection and memory: it gets
	// BodyTimeout for the whole body, then the connection is cut.
	rc := http.NewResponseController(w)
	if s.opts.BodyTimeout > 0 {
		rc.SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	if s.opts.BodyTimeout > 0 && err == nil {
		rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			s.metrics.requests.WithLabelValues(endpoint, "unknown", "bad_request").Inc()
			fm.writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "",
				fmt.Sprintf("the request body is larger than %d bytes", s.opts.MaxBody))
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.metrics.requests.WithLabelValues(endpoint, "unknown", "bad_request").Inc()
			w.Header().Set("Connection", "close") // the rest of the body is not worth waiting for
			fm.writeError(w, http.StatusRequestTimeout, "invalid_request_error", "request_timeout", "",
				fmt.Sprintf("the request body did not arrive within %v", s.opts.BodyTimeout))
			return
		}
		s.metrics.requests.WithLabelValues(endpoint, "unknown", "canceled").Inc()
		return // the client went away while sending
	}
	if !utf8.Valid(body) {
		s.metrics.requests.WithLabelValues(endpoint, "unknown", "bad_request").Inc()
		fm.writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_request", "",
			"the request body is not valid UTF-8, which JSON requires")
		return
	}
	req, err := fm.parse(body)
	if req != nil {
		req.format, req.endpoint = fm, fm.name
	}
	if err != nil {
		s.metrics.requests.WithLabelValues(endpoint, "unknown", "bad_request").Inc()
		param := ""
		if br := (*badRequest)(nil); errors.As(err, &br) {
			param = br.param
		}
		fm.writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_request", param, err.Error())
		return
	}
	stream := strconv.FormatBool(req.stream)
	if !s.admitModel(w, fm, req.model, r.URL.Path) {
		s.metrics.requests.WithLabelValues(endpoint, stream, "refused").Inc()
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if l == nil {
		// Fail-open, and no index yet: the operator chose to serve unchecked.
		s.metrics.requests.WithLabelValues(endpoint, stream, "unchecked").Inc()
		s.log.Info("completion", "request_id", rid, "endpoint", endpoint, "stream", req.stream, "n", req.n,
			"model", req.model, "outcome", "unchecked")
		s.rp.ServeHTTP(w, r)
		return
	}
	f := newFilter(r.Context(), s, l.ix, req, rid)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	g := &guard{client: r.Context(), cancel: cancel, idle: s.opts.StreamIdle, max: s.opts.MaxReply}
	ctx = context.WithValue(context.WithValue(ctx, ctxKey{}, f), guardKey{}, g)
	s.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(s.upstream)
	pr.SetXForwarded()
	if pr.In.Context().Value(ctxKey{}) != nil || pr.In.Context().Value(modelsKey{}) != nil {
		// The proxy must read what it filters: no compressed bodies.
		pr.Out.Header.Del("Accept-Encoding")
	}
}

// errBadResponse marks errors about a response that came: the upstream was
// reached, its answer could not be used.
var errBadResponse = errors.New("bad upstream response")

// modifyResponse puts the filter between a completion response and the client, and
// adds the models' license objects to a model list.
func (s *Server) modifyResponse(resp *http.Response) error {
	if err := s.annotateModels(resp); err != nil {
		return fmt.Errorf("%w: %w", errBadResponse, err)
	}
	if err := s.filterResponse(resp); err != nil {
		return fmt.Errorf("%w: %w", errBadResponse, err)
	}
	return nil
}

func (s *Server) filterResponse(resp *http.Response) error {
	f, _ := resp.Request.Context().Value(ctxKey{}).(*filter)
	if f == nil {
		return nil
	}
	if g, _ := resp.Request.Context().Value(guardKey{}).(*guard); g != nil {
		resp.Body = g.body(resp.Body)
	}
	stream := strconv.FormatBool(f.req.stream)
	if resp.StatusCode != http.StatusOK {
		s.metrics.upstreamErrors.WithLabelValues("status").Inc()
		s.metrics.requests.WithLabelValues(f.req.endpoint, stream, "upstream_error").Inc()
		return nil // passed on as the upstream sent it
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return fmt.Errorf("the upstream sent a %s-encoded completion although asked for none", enc)
	}
	ct := resp.Header.Get("Content-Type")
	fm := f.req.format
	if strings.HasPrefix(ct, "text/event-stream") || fm.lines && strings.HasPrefix(ct, "application/x-ndjson") {
		resp.Body = newStreamFilter(f, fm.newWire(f.req), fm.lines, resp.Body, s.opts.MaxEvent, func(sf *streamFilter, err error) {
			s.done(f, stream, err)
		})
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(s.opts.MaxEvent)+1))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if len(body) > s.opts.MaxEvent {
		return fmt.Errorf("the upstream's response is larger than %d bytes", s.opts.MaxEvent)
	}
	start := time.Now()
	out, err := f.req.format.newWire(f.req).whole(f, body)
	f.scan += time.Since(start)
	if err != nil {
		return err
	}
	if f.indexFailed() {
		if s.opts.FailOpen {
			out = body // unchecked, as the upstream sent it
		} else {
			out = f.req.format.errorBody("server_error", "index_unavailable", "",
				"cleanroom could not check this completion: its index did not answer ("+f.storeErr.Error()+")")
			resp.StatusCode, resp.Status = http.StatusServiceUnavailable, "503 Service Unavailable"
			resp.Header.Set("Content-Type", "application/json")
		}
	}
	if f.upstreamErr == "" && !bytes.HasPrefix(bytes.TrimSpace(out), []byte("{")) {
		f.upstreamErr = "stream" // not a completion at all
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	s.done(f, stream, nil)
	return nil
}

// proxyError answers when the upstream cannot be reached or its response cannot be
// filtered.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	f, _ := r.Context().Value(ctxKey{}).(*filter)
	g, _ := r.Context().Value(guardKey{}).(*guard)
	var ne net.Error
	timeout := errors.Is(err, errUpstreamStalled) || errors.As(err, &ne) && ne.Timeout()
	gone := errors.Is(err, context.Canceled) || r.Context().Err() != nil
	if g != nil {
		gone = g.client.Err() != nil
		if reason := g.struck(); reason != nil && !gone {
			// The guard ended the upstream request: a stall or an overlong reply.
			timeout = errors.Is(reason, errUpstreamStalled)
			if !errors.Is(err, reason) {
				err = fmt.Errorf("%w: %w", reason, err)
			}
		}
	}
	if gone {
		if f != nil {
			s.metrics.requests.WithLabelValues(f.req.endpoint, strconv.FormatBool(f.req.stream), "canceled").Inc()
		}
		return // the client went away
	}
	kind := "connect"
	if errors.Is(err, errBadResponse) {
		kind = "stream"
	}
	s.metrics.upstreamErrors.WithLabelValues(kind).Inc()
	if f != nil {
		s.metrics.requests.WithLabelValues(f.req.endpoint, strconv.FormatBool(f.req.stream), "upstream_error").Inc()
	}
	s.log.Warn("upstream request failed", "path", r.URL.Path, "err", err)
	fm := chatFormat // an OpenAI error for what is not filtered
	if f != nil {
		fm = f.req.format
	}
	if timeout {
		fm.writeError(w, http.StatusGatewayTimeout, "upstream_error", "upstream_timeout", "", "the upstream API timed out: "+err.Error())
		return
	}
	fm.writeError(w, http.StatusBadGateway, "upstream_error", "upstream_unavailable", "", "the upstream API failed: "+err.Error())
}

// done records a finished response: metrics, audit log, log line.
func (s *Server) done(f *filter, stream string, err error) {
	outcome := "clean"
	for _, c := range f.choices {
		if c.cited == nil {
			c.cited = f.citations(c)
		}
		for _, ct := range c.cited {
			s.metrics.matches.WithLabelValues(licenseLabel(ct.License), ct.Action).Inc()
			s.audit.write(auditRecord{Time: time.Now().UTC(), RequestID: f.rid, Model: f.req.model, Endpoint: f.req.endpoint,
				Choice: c.index, citation: ct})
			if ct.action == Annotate && outcome == "clean" {
				outcome = "annotated"
			}
		}
		if c.blocked != nil {
			outcome = "blocked"
		}
	}
	switch {
	case f.storeErr != nil && s.opts.FailOpen:
		outcome = "unchecked"
	case f.storeErr != nil:
		outcome = "unavailable"
	case errors.Is(err, errClientGone):
		outcome = "canceled"
	case err != nil:
		s.metrics.upstreamErrors.WithLabelValues("stream").Inc()
		outcome = "upstream_error"
	case f.upstreamErr != "":
		s.metrics.upstreamErrors.WithLabelValues(f.upstreamErr).Inc()
		outcome = "upstream_error"
	}
	s.metrics.requests.WithLabelValues(f.req.endpoint, stream, outcome).Inc()
	tokens := f.tokens()
	s.metrics.tokens.Add(float64(tokens))
	s.metrics.scan.Observe(f.scan.Seconds())
	s.log.Info("completion", "request_id", f.rid, "endpoint", f.req.endpoint, "stream", f.req.stream, "n", f.req.n,
		"model", f.req.model, "outcome", outcome, "tokens", tokens, "scan_ms", float64(f.scan.Microseconds())/1000)
}
