// Package metrics exposes Trustlog's Prometheus metrics at GET /1.0/metrics:
// authentication decisions, request latency, the read model's position and
// lag, pending tokens and the age of the CRL. Metrics certificates reach
// this route and nothing else.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/projections"
)

// Model is the read side the metrics describe.
type Model interface {
	// Snapshot returns the current model without blocking.
	Snapshot() *projections.Model
}

// Contact is implemented by read models that know when they last heard
// from the stream (projections.Projector does).
type Contact interface {
	LastContact() time.Time
}

// Stream reports the newest sequence on the event stream; optional.
type Stream interface {
	LastSeq(ctx context.Context) (uint64, error)
}

// Metrics holds the registry and the instruments. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	// The series every request touches, kept in shards (hot.go).
	decisions seriesMap[decisionKey, shardedCounter]
	latency   seriesMap[servedKey, shardedHistogram]
}

type decisionKey struct {
	method   string
	admitted bool
}

type servedKey struct {
	route  string
	status int
}

// New returns the metrics of a service whose read model is model. stream
// may be nil; now is the clock for ages.
func New(model Model, stream Stream, now func() time.Time) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(hotCollector{m}, &modelCollector{model: model, stream: stream, now: now},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Authenticated implements gate.Observer.
func (m *Metrics) Authenticated(id authn.Identity, admitted bool) {
	m.decisions.get(decisionKey{method: id.Method, admitted: admitted}).inc()
}

// Served implements gate.Observer.
func (m *Metrics) Served(route string, status int, d time.Duration) {
	m.latency.get(servedKey{route: route, status: status}).observe(d.Seconds())
}

// Routes returns GET /1.0/metrics, open to metrics certificates and every
// other trusted caller.
func (m *Metrics) Routes() []gate.Route {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	return []gate.Route{{Method: "GET", Path: "/1.0/metrics", Metrics: true, Handler: h}}
}

var (
	descApplied  = prometheus.NewDesc("trustlog_projection_applied_sequence", "Stream sequence the read model has applied.", nil, nil)
	descLag      = prometheus.NewDesc("trustlog_projection_lag_events", "Events stored on the stream but not yet applied.", nil, nil)
	descContact  = prometheus.NewDesc("trustlog_projection_contact_age_seconds", "Seconds since the read model last heard from the stream.", nil, nil)
	descCerts    = prometheus.NewDesc("trustlog_trusted_certificates", "Entries in the trust store.", nil, nil)
	descTokens   = prometheus.NewDesc("trustlog_tokens_pending", "Trust tokens issued and not yet redeemed, revoked or expired.", nil, nil)
	descCRLAge   = prometheus.NewDesc("trustlog_crl_age_seconds", "Seconds since the thisUpdate of the CRL in force.", nil, nil)
	descCRLStale = prometheus.NewDesc("trustlog_crl_stale", "1 when the CRL in force is past its nextUpdate.", nil, nil)
	descCRLCount = prometheus.NewDesc("trustlog_crl_revoked_certificates", "Serials on the CRL in force.", nil, nil)
	descPKI      = prometheus.NewDesc("trustlog_pki_mode", "1 when a CA is set (PKI mode).", nil, nil)
	descChainBad = prometheus.NewDesc("trustlog_chain_break_sequence", helpChainBreak, nil, nil)
	descSkipped  = prometheus.NewDesc("trustlog_events_skipped_total", "Events the read model passed over (unknown type or undecodable).", nil, nil)
)

const helpChainBreak = "Sequence where the event log stops being one hash chain (a prevhash that does not match, a record that is no event, " +
	"a sequence missing or delivered twice with other content), 0 if intact. While it is not 0, the instance refuses HTTPS requests."

// modelCollector reads the read model at scrape time.
type modelCollector struct {
	model  Model
	stream Stream
	now    func() time.Time
}

func (c *modelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApplied, descLag, descContact, descCerts, descTokens, descCRLAge, descCRLStale, descCRLCount, descPKI, descChainBad, descSkipped} {
		ch <- d
	}
}

func (c *modelCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.model.Snapshot()
	now := c.now()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descApplied, float64(m.Seq()))
	if c.stream != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if last, err := c.stream.LastSeq(ctx); err == nil && last >= m.Seq() {
			gauge(descLag, float64(last-m.Seq()))
		}
		cancel()
	}
	if ct, ok := c.model.(Contact); ok {
		if t := ct.LastContact(); !t.IsZero() {
			gauge(descContact, now.Sub(t).Seconds())
		}
	}
	gauge(descCerts, float64(m.NumCertificates()))
	gauge(descTokens, float64(len(m.PendingTokens())))
	pkiMode := 0.0
	if m.CA() != nil {
		pkiMode = 1
	}
	gauge(descPKI, pkiMode)
	if crl := m.CRL(); crl != nil {
		gauge(descCRLAge, now.Sub(crl.ThisUpdate).Seconds())
		stale := 0.0
		if crl.Stale(now) {
			stale = 1
		}
		gauge(descCRLStale, stale)
		gauge(descCRLCount, float64(crl.Total))
	}
	gauge(descChainBad, float64(m.ChainBreak()))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(m.Skipped()))
}
