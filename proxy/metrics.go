package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// outcomes of a completion request, the values of the requests counter's label.
// refused: the model's license is blocked by the policy; unchecked: passed on
// unfiltered because no index is loaded and --fail-open is set; unsupported: a
// request for a path the proxy neither checks nor passes (endpoint "other").
var outcomes = []string{"clean", "annotated", "blocked", "bad_request", "upstream_error", "unavailable", "canceled",
	"refused", "unchecked", "unsupported"}

// metrics are the proxy's Prometheus metrics, on a registry of their own.
type metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec // endpoint, stream, outcome
	matches        *prometheus.CounterVec // license, action
	tokens         prometheus.Counter     // output tokens scanned
	scan           prometheus.Histogram   // seconds of fingerprinting and lookup per response
	holdback       prometheus.Histogram   // seconds an event waited in the holdback
	upstreamErrors *prometheus.CounterVec // kind
	reloads        *prometheus.CounterVec // result
	storeErrors    *prometheus.CounterVec // op
	indexGen       *prometheus.GaugeVec   // generation
	indexDocs      prometheus.Gauge
	indexFPs       prometheus.Gauge
	indexShards    prometheus.Gauge
	indexBytes     prometheus.Gauge
	indexLoad      prometheus.Gauge
	indexBuilt     prometheus.Gauge
	indexLoaded    prometheus.Gauge
	ready          prometheus.Gauge
	failOpen       prometheus.Gauge
	modelRequests  *prometheus.CounterVec // model, license, class, decision
	cardInfo       *prometheus.GaugeVec   // model, card, card_license, reviewed_license, commit
	cardMismatch   *prometheus.GaugeVec   // model, card, change
	cardReads      *prometheus.CounterVec // result
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cleanroom_requests_total",
		Help: "Completion requests by endpoint (chat, completions), stream (true, false, or unknown when the request was not read) and outcome (clean, annotated, blocked, bad_request, upstream_error, unavailable, canceled, refused for a model license the policy blocks, unchecked when passed on unfiltered in fail-open mode).",
	}, []string{"endpoint", "stream", "outcome"})
	f(m.requests)
	m.matches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cleanroom_matches_total",
		Help: "Matches of indexed copyleft code in model output, by the license of the source and the action taken (block, annotate, allow).",
	}, []string{"license", "action"})
	f(m.matches)
	m.tokens = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cleanroom_scanned_tokens_total",
		Help: "Tokens of model output fingerprinted and looked up.",
	})
	f(m.tokens)
	m.scan = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cleanroom_scan_duration_seconds",
		Help:    "Time spent fingerprinting a response and looking it up in the index.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
	})
	f(m.scan)
	m.holdback = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cleanroom_holdback_duration_seconds",
		Help:    "Time each upstream event waited in the proxy before going to the client (the holdback that makes blocking leak-free).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	})
	f(m.holdback)
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cleanroom_upstream_errors_total",
		Help: "Upstream failures by kind: connect (no response), status (an error status passed on, or an error object in place of a completion), stream (a response that broke off or was not a completion).",
	}, []string{"kind"})
	f(m.upstreamErrors)
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cleanroom_index_reloads_total",
		Help: "Index loads by result (success, failure).",
	}, []string{"result"})
	f(m.reloads)
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cleanroom_index_store_errors_total",
		Help: "Failures of the index store (a Redis Cluster that is unreachable or failing over) by operation: lookup (a response whose check could not finish: blocked by an error in fail-closed mode, passed on unchecked with --fail-open), load (a generation that could not be loaded).",
	}, []string{"op"})
	f(m.storeErrors)
	m.indexGen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cleanroom_index_generation_info",
		Help: "1 for the index generation being served (its build name), by generation.",
	}, []string{"generation"})
	f(m.indexGen)
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		f(g)
		return g
	}
	m.indexDocs = gauge("cleanroom_index_documents", "Documents in the index being served.")
	m.indexFPs = gauge("cleanroom_index_fingerprints", "Fingerprint postings in the index being served.")
	m.indexShards = gauge("cleanroom_index_shards", "Shards of the index being served.")
	m.indexBytes = gauge("cleanroom_index_disk_bytes", "Bytes of the shard files of the index being served.")
	m.indexLoad = gauge("cleanroom_index_load_duration_seconds", "How long the last successful index load took.")
	m.indexBuilt = gauge("cleanroom_index_build_timestamp_seconds", "When the index being served was built, in Unix seconds.")
	m.indexLoaded = gauge("cleanroom_index_load_timestamp_seconds", "When the index being served was loaded, in Unix seconds.")
	m.ready = gauge("cleanroom_ready", "1 when an index is loaded and the proxy serves completions, else 0.")
	m.failOpen = gauge("cleanroom_fail_open", "1 while completions pass through unchecked: no index is loaded and --fail-open is set; else 0.")
	m.modelRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cleanroom_model_requests_total",
		Help: "Requests naming a model, by the model's entry in the policy's model list (unlisted for models it does not list), its license and license class, and the decision (allowed, refused).",
	}, []string{"model", "license", "class", "decision"})
	f(m.modelRequests)
	m.cardInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cleanroom_model_license_info",
		Help: "1 for each model card read with --model-dir: the policy entry it falls under (unlisted for none), the card's model id, the license its card names, the license the review recorded, and the snapshot commit.",
	}, []string{"model", "card", "card_license", "reviewed_license", "commit"})
	f(m.cardInfo)
	m.cardMismatch = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cleanroom_model_card_mismatch",
		Help: "1 when a model's card (--model-dir) differs from what its license review recorded in the policy, by policy entry, card and change (license, commit); else 0.",
	}, []string{"model", "card", "change"})
	f(m.cardMismatch)
	m.cardReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cleanroom_model_card_reads_total",
		Help: "Readings of the model cards of --model-dir, at start and on each reload, by result (success, failure: the cards read before stay).",
	}, []string{"result"})
	f(m.cardReads)
	// Counters a dashboard divides by, or an alert takes the increase of, must exist
	// before their first event.
	for _, fm := range formats {
		for _, st := range []string{"true", "false", "unknown"} {
			for _, o := range outcomes {
				m.requests.WithLabelValues(fm.name, st, o)
			}
		}
	}
	m.requests.WithLabelValues(endpointOther, "unknown", "unsupported")
	for _, kind := range []string{"connect", "status", "stream"} {
		m.upstreamErrors.WithLabelValues(kind)
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	for _, op := range []string{"lookup", "load"} {
		m.storeErrors.WithLabelValues(op)
	}
	for _, r := range []string{"success", "failure"} {
		m.cardReads.WithLabelValues(r)
	}
	return m
}

// knowModels creates the model request series of every model the policy lists,
// and of unlisted ones, so that rates and increases see their first requests.
func (m *metrics) knowModels(mp *ModelPolicy) {
	decisions := []modelDecision{{}, {refused: true}}
	if mp != nil {
		for _, e := range mp.list {
			decisions = append(decisions, modelDecision{entry: e}, modelDecision{entry: e, refused: true})
		}
	}
	for _, d := range decisions {
		m.modelRequests.WithLabelValues(d.labels())
	}
}
