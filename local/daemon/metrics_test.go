package daemon_test

// GET /1.0/metrics on a real trustlogd in PKI mode: who may read it, the
// Prometheus text and OpenMetrics expositions, and that the trustlog_*
// families say what happened.

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
)

// pkiSamples parses a Prometheus text exposition into its samples, keyed
// by the series as written ("name" or `name{label="v",...}`).
func pkiSamples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetrics checks GET /1.0/metrics: untrusted callers are refused; a
// metrics certificate reads the trustlog_* families in Prometheus text or,
// when it asks, in OpenMetrics (ending in "# EOF"), and reaches nothing
// else; admins read it too. The values follow the requests, tokens and the
// CRL of the test.
func TestMetrics(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	now := clock.Now()
	ca := newPKICA(t, "metrics-ca", now)
	s.setCA(t, ca.PEM)
	metricsCert, admin, revoked := ca.client(t, "scraper", now), ca.client(t, "admin", now), ca.client(t, "revoked", now)
	s.trust(t, metricsCert, api.CertificatesPost{Name: "scraper", Type: "metrics"})
	s.trust(t, admin, api.CertificatesPost{Name: "admin"})
	s.trust(t, revoked, api.CertificatesPost{Name: "revoked"})
	s.setCRL(t, ca.crl(t, 1, now, now.Add(24*time.Hour), revoked.X509.SerialNumber))
	s.issueToken(t, "pending-1")
	s.issueToken(t, "pending-2")
	clock.Advance(90 * time.Second)
	scraper := s.client(t, metricsCert)
	stranger := s.client(t, selfSigned(t, "stranger", now.Add(-time.Hour), now.Add(time.Hour)))

	scrape := func(t *testing.T) map[string]float64 {
		t.Helper()
		rep := s.over(t, scraper, "GET", "/1.0/metrics", nil)
		if rep.Code != 200 {
			t.Fatalf("metrics certificate GET /1.0/metrics: %s", rep)
		}
		return pkiSamples(t, string(rep.Body))
	}

	t.Run("fail/untrusted", func(t *testing.T) {
		wantErr(t, "untrusted GET /1.0/metrics", s.over(t, stranger, "GET", "/1.0/metrics", nil), 403, "not authorized")
		wantErr(t, "revoked GET /1.0/metrics", s.over(t, s.client(t, revoked), "GET", "/1.0/metrics", nil), 403, "not authorized")
		wantErr(t, "no certificate GET /1.0/metrics", s.over(t, s.client(t, nil), "GET", "/1.0/metrics", nil), 403, "not authorized")
	})
	t.Run("ok/metrics certificate, Prometheus text", func(t *testing.T) {
		rep := s.over(t, scraper, "GET", "/1.0/metrics", nil)
		if rep.Code != 200 || !strings.HasPrefix(rep.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("GET /1.0/metrics: %d %q", rep.Code, rep.Header.Get("Content-Type"))
		}
		body := string(rep.Body)
		for _, family := range []string{
			"trustlog_auth_decisions_total counter",
			"trustlog_request_duration_seconds histogram",
			"trustlog_projection_applied_sequence gauge",
			"trustlog_projection_lag_events gauge",
			"trustlog_projection_contact_age_seconds gauge",
			"trustlog_tokens_pending gauge",
			"trustlog_crl_age_seconds gauge",
			"trustlog_crl_stale gauge",
			"trustlog_crl_revoked_certificates gauge",
			"trustlog_pki_mode gauge",
			"trustlog_trusted_certificates gauge",
		} {
			if !strings.Contains(body, "# TYPE "+family+"\n") {
				t.Errorf("no family %q in:\n%s", family, body)
			}
		}
		if strings.Contains(body, "# EOF") {
			t.Error("Prometheus text ends in # EOF")
		}
		ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
		defer cancel()
		if err := s.d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		m := pkiSamples(t, body)
		for series, want := range map[string]float64{
			"trustlog_projection_applied_sequence": float64(s.lastSeq(t)),
			"trustlog_projection_lag_events":       0,
			"trustlog_tokens_pending":              2,
			"trustlog_crl_age_seconds":             90,
			"trustlog_crl_stale":                   0,
			"trustlog_crl_revoked_certificates":    1,
			"trustlog_pki_mode":                    1,
			"trustlog_trusted_certificates":        3,
		} {
			if got, ok := m[series]; !ok || got != want {
				t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
			}
		}
	})
	t.Run("ok/decisions and durations count requests", func(t *testing.T) {
		const n = 3
		before := scrape(t)
		for range n {
			s.over(t, stranger, "GET", "/1.0/certificates", nil)
			s.over(t, s.client(t, admin), "GET", "/1.0/certificates", nil)
		}
		after := scrape(t)
		for series, want := range map[string]float64{
			`trustlog_auth_decisions_total{method="none",result="refused"}`:                                n,
			`trustlog_auth_decisions_total{method="tls",result="admitted"}`:                                n + 1, // and the second scrape itself
			`trustlog_request_duration_seconds_count{code="403",route="GET /1.0/certificates"}`:            n,
			`trustlog_request_duration_seconds_count{code="200",route="GET /1.0/certificates"}`:            n,
			`trustlog_request_duration_seconds_bucket{code="403",route="GET /1.0/certificates",le="+Inf"}`: n,
		} {
			if got := after[series] - before[series]; got != want {
				t.Errorf("%s grew by %v, want %v", series, got, want)
			}
		}
		// The pki method is counted once core.trust_ca_certificates trusts
		// a client with no entry.
		s.setConfig(t, "core.trust_ca_certificates", "true")
		loner := s.client(t, ca.client(t, "loner", clock.Now()))
		s.over(t, loner, "GET", "/1.0/certificates", nil)
		if got := scrape(t)[`trustlog_auth_decisions_total{method="pki",result="admitted"}`]; got != 1 {
			t.Errorf("pki admitted = %v, want 1", got)
		}
	})
	t.Run("ok/OpenMetrics", func(t *testing.T) {
		rep := s.over(t, scraper, "GET", "/1.0/metrics", nil, "Accept", "application/openmetrics-text")
		if rep.Code != 200 || !strings.HasPrefix(rep.Header.Get("Content-Type"), "application/openmetrics-text") {
			t.Fatalf("GET /1.0/metrics, OpenMetrics: %d %q", rep.Code, rep.Header.Get("Content-Type"))
		}
		if !strings.HasSuffix(string(rep.Body), "# EOF\n") {
			t.Errorf("OpenMetrics body does not end in # EOF:\n%s", rep.Body)
		}
		if !strings.Contains(string(rep.Body), "# TYPE trustlog_auth_decisions counter\n") {
			t.Errorf("no trustlog_auth_decisions counter in the OpenMetrics body")
		}
	})
	t.Run("fail/metrics certificate elsewhere", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{
			{"GET", "/1.0/certificates"}, {"GET", "/1.0/operations"}, {"GET", "/1.0/trustlog/pki/ca"},
			{"PATCH", "/1.0"}, {"GET", "/1.0/certificates/" + metricsCert.FP},
		} {
			var body any
			if r.method == "PATCH" {
				body = api.ServerPut{Config: map[string]string{"user.x": "y"}}
			}
			wantErr(t, "metrics certificate "+r.method+" "+r.path, s.over(t, scraper, r.method, r.path, body), 403, "not authorized")
		}
		if v := s.view(t, scraper); v.Auth != "untrusted" || v.Method != "" {
			t.Errorf("metrics certificate GET /1.0: %+v", v)
		}
	})
	t.Run("ok/admins read it too", func(t *testing.T) {
		if rep := s.over(t, s.client(t, admin), "GET", "/1.0/metrics", nil); rep.Code != 200 || !strings.Contains(string(rep.Body), "trustlog_pki_mode 1") {
			t.Errorf("TLS admin: %d", rep.Code)
		}
		rep := s.call(t, "GET", "/1.0/metrics", nil)
		if rep.Code != http.StatusOK || !strings.Contains(string(rep.Body), "trustlog_pki_mode 1") {
			t.Errorf("unix admin: %d", rep.Code)
		}
	})
	t.Run("ok/stale CRL", func(t *testing.T) {
		clock.Advance(25 * time.Hour)
		m := scrape(t)
		if m["trustlog_crl_stale"] != 1 || m["trustlog_crl_age_seconds"] != (25*time.Hour+90*time.Second).Seconds() {
			t.Errorf("stale: trustlog_crl_stale %v, age %v", m["trustlog_crl_stale"], m["trustlog_crl_age_seconds"])
		}
	})
}
