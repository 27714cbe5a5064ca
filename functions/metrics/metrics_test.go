package metrics_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/metrics"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/projections"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fixed is a read model that does not change.
type fixed struct{ m *projections.Model }

func (f fixed) Snapshot() *projections.Model { return f.m }

// contacted is a read model that knows when it last heard from the stream.
type contacted struct {
	fixed
	at time.Time
}

func (c contacted) LastContact() time.Time { return c.at }

// stream is the metrics package's Stream: the newest sequence, or an error.
type stream struct {
	last uint64
	err  error
}

func (s stream) LastSeq(context.Context) (uint64, error) { return s.last, s.err }

// fold builds a model from payloads.
func fold(tb testing.TB, payloads ...events.Payload) *projections.Model {
	tb.Helper()
	b := projections.NewBuilder(nil)
	for i, p := range payloads {
		env, err := events.New(fmt.Sprintf("ev-%d", i+1), "/test", t0, events.Actor{Name: "test", Method: "unix"}, p)
		if err != nil {
			tb.Fatal(err)
		}
		env.PrevHash = b.Hash()
		raw, err := env.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		if err := b.Apply(events.Record{Seq: uint64(i + 1), Raw: raw}); err != nil {
			tb.Fatal(err)
		}
	}
	return b.Model()
}

// pkiEvents are a CA and its CRL of n serials, thisUpdate t0, nextUpdate
// t0+1h.
func pkiEvents(tb testing.TB, n int) []events.Payload {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(der)
	ca, err := pki.CAEvent(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	if err != nil {
		tb.Fatal(err)
	}
	entries := make([]x509.RevocationListEntry, n)
	for i := range entries {
		entries[i] = x509.RevocationListEntry{SerialNumber: big.NewInt(int64(i + 2)), RevocationTime: t0}
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: t0,
		NextUpdate: t0.Add(time.Hour), RevokedCertificateEntries: entries}, caCert, k)
	if err != nil {
		tb.Fatal(err)
	}
	evs, err := pki.CRLEvents(fold(tb, ca), crl)
	if err != nil {
		tb.Fatal(err)
	}
	return append([]events.Payload{ca}, evs...)
}

// scrape serves GET /1.0/metrics from m with the given Accept header.
func scrape(t *testing.T, m *metrics.Metrics, accept string) (*http.Response, string) {
	t.Helper()
	routes := m.Routes()
	if len(routes) != 1 || routes[0].Method != "GET" || routes[0].Path != "/1.0/metrics" || !routes[0].Metrics || routes[0].Untrusted {
		t.Fatalf("routes: %+v", routes)
	}
	r := httptest.NewRequest("GET", "/1.0/metrics", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	routes[0].Handler.ServeHTTP(w, r)
	return w.Result(), w.Body.String()
}

// samples parses the sample lines of a text exposition.
func samples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// trustlogSamples keeps the trustlog_* samples (the Go and process
// collectors' values vary).
func trustlogSamples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := samples(t, text)
	for k := range out {
		if !strings.HasPrefix(k, "trustlog_") {
			delete(out, k)
		}
	}
	return out
}

// TestModelGauges checks the gauges read from the model at scrape time.
func TestModelGauges(t *testing.T) {
	t.Parallel()
	pkiEvs := pkiEvents(t, 3)
	token := events.TokenIssued{ID: "tok-1", Name: "n", Type: "client", SecretHash: strings.Repeat("ab", 32), ExpiresAt: t0.Add(time.Hour)}
	withPKI := fold(t, append([]events.Payload{token}, pkiEvs...)...)
	// broken's event 2 names a predecessor that is not event 1.
	b := projections.NewBuilder(fold(t, &events.ConfigChanged{Key: "user.a", Value: "1"}))
	forged, err := events.New("ev-forged", "/test", t0, events.Actor{}, &events.ConfigChanged{Key: "user.b", Value: "2"})
	if err != nil {
		t.Fatal(err)
	}
	forged.PrevHash = strings.Repeat("0", 64)
	raw, _ := forged.Marshal()
	_ = b.Apply(events.Record{Seq: 2, Raw: raw})
	broken := b.Model()
	tests := []struct {
		name  string
		model metrics.Model
		str   metrics.Stream
		now   time.Time
		want  map[string]float64
	}{
		{"ok/empty, no stream", fixed{fold(t)}, nil, t0, map[string]float64{
			"trustlog_projection_applied_sequence": 0, "trustlog_trusted_certificates": 0, "trustlog_tokens_pending": 0,
			"trustlog_pki_mode": 0, "trustlog_chain_break_sequence": 0, "trustlog_events_skipped_total": 0,
		}},
		{"ok/PKI mode, lag and contact", contacted{fixed{withPKI}, t0.Add(-3 * time.Second)}, stream{last: 9}, t0.Add(90 * time.Second), map[string]float64{
			"trustlog_projection_applied_sequence": 3, "trustlog_projection_lag_events": 6,
			"trustlog_projection_contact_age_seconds": 93, "trustlog_trusted_certificates": 0,
			"trustlog_tokens_pending": 1, "trustlog_pki_mode": 1, "trustlog_crl_age_seconds": 90,
			"trustlog_crl_stale": 0, "trustlog_crl_revoked_certificates": 3,
			"trustlog_chain_break_sequence": 0, "trustlog_events_skipped_total": 0,
		}},
		{"ok/stale list, stream error", fixed{withPKI}, stream{err: errors.New("down")}, t0.Add(2 * time.Hour), map[string]float64{
			"trustlog_projection_applied_sequence": 3, "trustlog_trusted_certificates": 0,
			"trustlog_tokens_pending": 1, "trustlog_pki_mode": 1, "trustlog_crl_age_seconds": 7200,
			"trustlog_crl_stale": 1, "trustlog_crl_revoked_certificates": 3,
			"trustlog_chain_break_sequence": 0, "trustlog_events_skipped_total": 0,
		}},
		{"ok/chain broken at 2", fixed{broken}, nil, t0, map[string]float64{
			"trustlog_projection_applied_sequence": 2, "trustlog_trusted_certificates": 0, "trustlog_tokens_pending": 0,
			"trustlog_pki_mode": 0, "trustlog_chain_break_sequence": 2, "trustlog_events_skipped_total": 0,
		}},
		{"ok/stream behind the model has no lag", fixed{withPKI}, stream{last: 1}, t0, map[string]float64{
			"trustlog_projection_applied_sequence": 3, "trustlog_trusted_certificates": 0,
			"trustlog_tokens_pending": 1, "trustlog_pki_mode": 1, "trustlog_crl_age_seconds": 0,
			"trustlog_crl_stale": 0, "trustlog_crl_revoked_certificates": 3,
			"trustlog_chain_break_sequence": 0, "trustlog_events_skipped_total": 0,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := tt.now
			m := metrics.New(tt.model, tt.str, func() time.Time { return now })
			resp, body := scrape(t, m, "")
			if resp.StatusCode != 200 {
				t.Fatalf("scrape: %d %s", resp.StatusCode, body)
			}
			if diff := cmp.Diff(tt.want, trustlogSamples(t, body)); diff != "" {
				t.Errorf("trustlog samples (-want +got):\n%s", diff)
			}
		})
	}
}

// TestObserver checks the counters the gate feeds, directly and through a
// real gate.
func TestObserver(t *testing.T) {
	t.Parallel()
	m := metrics.New(fixed{fold(t)}, nil, func() time.Time { return t0 })
	m.Authenticated(authn.Identity{}, false)
	m.Authenticated(authn.Identity{}, true)
	m.Authenticated(authn.Identity{Trusted: true, Method: authn.MethodPKI}, true)
	m.Served("GET /1.0", 200, 300*time.Microsecond)
	m.Served("GET /1.0", 200, 2*time.Second)
	m.Served("GET /1.0/certificates", 403, time.Millisecond)

	_, body := scrape(t, m, "")
	got := trustlogSamples(t, body)
	for series, want := range map[string]float64{
		`trustlog_auth_decisions_total{method="none",result="refused"}`:                                 1,
		`trustlog_auth_decisions_total{method="none",result="admitted"}`:                                1,
		`trustlog_auth_decisions_total{method="pki",result="admitted"}`:                                 1,
		`trustlog_request_duration_seconds_count{code="200",route="GET /1.0"}`:                          2,
		`trustlog_request_duration_seconds_sum{code="200",route="GET /1.0"}`:                            2.0003,
		`trustlog_request_duration_seconds_bucket{code="200",route="GET /1.0",le="0.0005"}`:             1,
		`trustlog_request_duration_seconds_bucket{code="200",route="GET /1.0",le="1"}`:                  1,
		`trustlog_request_duration_seconds_bucket{code="200",route="GET /1.0",le="+Inf"}`:               2,
		`trustlog_request_duration_seconds_count{code="403",route="GET /1.0/certificates"}`:             1,
		`trustlog_request_duration_seconds_bucket{code="403",route="GET /1.0/certificates",le="0.001"}`: 1,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}

	t.Run("ok/through the gate", func(t *testing.T) {
		m := metrics.New(fixed{fold(t)}, nil, func() time.Time { return t0 })
		h := gate.New(gate.Config{Authenticator: authn.New(fixed{fold(t)}, func() time.Time { return t0 }), Observer: m}, m.Routes()...)
		serve := func(local bool) int {
			r := httptest.NewRequest("GET", "/1.0/metrics", nil)
			if local {
				r = r.WithContext(authn.WithLocalUser(r.Context(), "root"))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Code
		}
		if code := serve(false); code != 403 {
			t.Errorf("untrusted: %d", code)
		}
		if code := serve(true); code != 200 {
			t.Errorf("unix admin: %d", code)
		}
		_, body := scrape(t, m, "")
		got := trustlogSamples(t, body)
		for series, want := range map[string]float64{
			`trustlog_auth_decisions_total{method="none",result="refused"}`:                1,
			`trustlog_auth_decisions_total{method="unix",result="admitted"}`:               1,
			`trustlog_request_duration_seconds_count{code="403",route="GET /1.0/metrics"}`: 1,
			`trustlog_request_duration_seconds_count{code="200",route="GET /1.0/metrics"}`: 1,
		} {
			if v := got[series]; v != want {
				t.Errorf("%s = %v, want %v", series, v, want)
			}
		}
	})
}

// TestExposition checks content negotiation: Prometheus text by default,
// OpenMetrics (ending in "# EOF") when asked for.
func TestExposition(t *testing.T) {
	t.Parallel()
	m := metrics.New(fixed{fold(t, pkiEvents(t, 1)...)}, nil, func() time.Time { return t0 })
	m.Authenticated(authn.Identity{Trusted: true, Method: authn.MethodTLS}, true)
	tests := []struct {
		name   string
		accept string
		ctype  string
		eof    bool
	}{
		{"ok/default", "", "text/plain; version=0.0.4", false},
		{"ok/text", "text/plain", "text/plain; version=0.0.4", false},
		{"ok/openmetrics", "application/openmetrics-text", "application/openmetrics-text; version=", true},
		{"ok/openmetrics 1.0.0", "application/openmetrics-text; version=1.0.0", "application/openmetrics-text; version=1.0.0", true},
		{"ok/openmetrics preferred", "application/openmetrics-text;q=0.9, text/plain;q=0.5", "application/openmetrics-text", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := scrape(t, m, tt.accept)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
				t.Fatalf("scrape: %d %q, want %q", resp.StatusCode, resp.Header.Get("Content-Type"), tt.ctype)
			}
			if got := strings.HasSuffix(body, "# EOF\n"); got != tt.eof {
				t.Errorf("body ends in # EOF: %v, want %v", got, tt.eof)
			}
			counter := "# TYPE trustlog_auth_decisions_total counter"
			if tt.eof {
				counter = "# TYPE trustlog_auth_decisions counter"
			}
			for _, want := range []string{counter, "trustlog_crl_stale 0", "trustlog_pki_mode 1"} {
				if !strings.Contains(body, want) {
					t.Errorf("no %q in:\n%s", want, body)
				}
			}
		})
	}
}
