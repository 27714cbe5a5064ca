package daemon_test

// Benchmarks of PKI mode (results and method in docs/benchmarks-pki.md):
//
//   - BenchmarkCRLRevocation: on one trustlogd, the time from
//     PUT /1.0/trustlog/pki/crl returning to the revoked client being
//     refused on its kept-alive connection, p50/p99 over b.N trials;
//   - BenchmarkAuthenticateCRL: authn.Authenticator.Authenticate in process
//     for a CA-signed P-384 client, with no CRL and with a 100,000-entry
//     CRL in force.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/projections"
)

// pkiPercentile returns the p-th percentile (0 < p ≤ 1) of sorted durations.
func pkiPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// pkiReportLatency reports p50 and p99 of durs as metrics named
// <prefix>-p50-ns and <prefix>-p99-ns.
func pkiReportLatency(b *testing.B, prefix string, durs []time.Duration) {
	slices.Sort(durs)
	b.ReportMetric(float64(pkiPercentile(durs, 0.50).Nanoseconds()), prefix+"-p50-ns")
	b.ReportMetric(float64(pkiPercentile(durs, 0.99).Nanoseconds()), prefix+"-p99-ns")
}

// pkiBenchGet sends GET path on c and returns the status.
func pkiBenchGet(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// BenchmarkCRLRevocation measures, per trial, the time from
// PUT /1.0/trustlog/pki/crl returning (to the admin on the unix socket) to
// the first refused request of the revoked client on its already open
// keep-alive TLS connection, on the same instance. Each trial trusts a
// fresh CA-signed certificate, warms its connection, then publishes a CRL
// with the next CRL number revoking it. It reports the p50/p99 of that
// time (refused-*), of the PUT itself (put-*), and the requests the client
// needed (1 means refused on the first request after the PUT returned).
func BenchmarkCRLRevocation(b *testing.B) {
	clock := newPKIClock()
	s := startPKI(b, b.TempDir(), clock)
	now := clock.Now()
	ca := newPKICA(b, "bench-ca", now)
	s.setCA(b, ca.PEM)
	url := "https://" + s.d.HTTPSAddr() + "/1.0/certificates"

	refused := make([]time.Duration, 0, b.N)
	puts := make([]time.Duration, 0, b.N)
	attempts := 0
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		cert := ca.client(b, fmt.Sprintf("bench-%d", i), now)
		s.trust(b, cert, api.CertificatesPost{Name: cert.X509.Subject.CommonName})
		c := s.client(b, cert)
		if code, err := pkiBenchGet(c, url); err != nil || code != 200 {
			b.Fatalf("trial %d: trusted client: %d %v", i, code, err)
		}
		der := ca.crl(b, int64(i+1), now, now.Add(24*time.Hour), cert.X509.SerialNumber)
		body := pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(der)}
		b.StartTimer()

		start := time.Now()
		if rep := s.call(b, "PUT", "/1.0/trustlog/pki/crl", body); rep.Code != 200 {
			b.Fatalf("trial %d: PUT crl: %s", i, rep)
		}
		returned := time.Now()
		for n := 1; ; n++ {
			code, err := pkiBenchGet(c, url)
			if err != nil {
				b.Fatalf("trial %d: %v", i, err)
			}
			if code == http.StatusForbidden {
				attempts += n
				break
			}
			if n == 1000 {
				b.Fatalf("trial %d: still %d after %d requests", i, code, n)
			}
		}
		refused = append(refused, time.Since(returned))
		puts = append(puts, returned.Sub(start))

		b.StopTimer()
		c.CloseIdleConnections()
		b.StartTimer()
	}
	b.StopTimer()
	pkiReportLatency(b, "refused", refused)
	pkiReportLatency(b, "put", puts)
	b.ReportMetric(float64(attempts)/float64(b.N), "requests/trial")
}

// pkiStaticModel is a read model that does not change.
type pkiStaticModel struct{ m *projections.Model }

func (s pkiStaticModel) Snapshot() *projections.Model { return s.m }

// pkiBenchFold folds payloads into a model, one event each.
func pkiBenchFold(b *testing.B, payloads []events.Payload) *projections.Model {
	b.Helper()
	bld := projections.NewBuilder(nil)
	for i, p := range payloads {
		env, err := events.New(fmt.Sprintf("ev-%d", i+1), "/bench", time.Unix(0, 0), events.Actor{Name: "bench", Method: "unix"}, p)
		if err != nil {
			b.Fatal(err)
		}
		env.PrevHash = bld.Hash()
		raw, err := env.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if err := bld.Apply(events.Record{Seq: uint64(i + 1), Raw: raw}); err != nil {
			b.Fatal(err)
		}
	}
	return bld.Model()
}

// BenchmarkAuthenticateCRL measures authn.Authenticator.Authenticate for a
// CA-signed P-384 client in process (no network): PKI mode off (a plain
// entry), PKI mode with no CRL, with a 100,000-entry CRL in force (entry,
// and no entry under core.trust_ca_certificates), and, for comparison, a
// cold signature cache (a new Authenticator per request, so the CA
// signature is verified every time).
func BenchmarkAuthenticateCRL(b *testing.B) {
	const total = 100_000
	now := time.Now().UTC()
	ca := newPKICA(b, "bench-ca", now)
	client := ca.client(b, "client", now)
	caEv, err := pki.CAEvent(ca.PEM)
	if err != nil {
		b.Fatal(err)
	}
	entry := events.CertificateTrusted{
		Fingerprint: client.FP, Name: "client", Type: "client", Projects: []string{}, Certificate: client.PEM,
	}
	serials := make([]*big.Int, total)
	for i := range serials {
		serials[i] = pkiSerial(b)
	}
	der := ca.crl(b, 1, now, now.Add(24*time.Hour), serials...)
	crlEvs, err := pki.CRLEvents(pkiBenchFold(b, []events.Payload{caEv}), der)
	if err != nil {
		b.Fatal(err)
	}
	trustCA := events.ConfigChanged{Key: authn.KeyTrustCA, Value: "true"}
	withCRL := append([]events.Payload{caEv}, crlEvs...)

	tests := []struct {
		name     string
		payloads []events.Payload
		cold     bool
		method   string
	}{
		{"pki=off", []events.Payload{entry}, false, authn.MethodTLS},
		{"pki=on/crl=none", []events.Payload{entry, caEv}, false, authn.MethodTLS},
		{"pki=on/crl=100k", append([]events.Payload{entry}, withCRL...), false, authn.MethodTLS},
		{"pki=on/crl=100k/trust_ca", append([]events.Payload{trustCA}, withCRL...), false, authn.MethodPKI},
		{"pki=on/crl=100k/cold-cache", append([]events.Payload{entry}, withCRL...), true, authn.MethodTLS},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			m := pkiBenchFold(b, tt.payloads)
			if c := m.CRL(); len(tt.payloads) > 2 && (c == nil || c.Total != total) {
				b.Fatalf("CRL in force: %+v", c)
			}
			clock := func() time.Time { return now }
			a := authn.New(pkiStaticModel{m}, clock)
			r := httptest.NewRequest("GET", "/1.0", nil)
			r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{client.X509}}
			if id := a.Authenticate(r); !id.Trusted || id.Method != tt.method {
				b.Fatalf("client: %+v", id)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if tt.cold {
					a = authn.New(pkiStaticModel{m}, clock)
				}
				if !a.Authenticate(r).Trusted {
					b.Fatal("client not trusted")
				}
			}
		})
	}
}

// BenchmarkCRLPublish measures PUT /1.0/trustlog/pki/crl of a list of
// 100,000 serials (about 3.5 MB of DER, five events in one atomic batch)
// through the unix socket: parse, verify, append, and wait until the read
// model has folded it.
func BenchmarkCRLPublish(b *testing.B) {
	const total = 100_000
	clock := newPKIClock()
	s := startPKI(b, b.TempDir(), clock)
	now := clock.Now()
	ca := newPKICA(b, "bench-ca", now)
	s.setCA(b, ca.PEM)
	serials := make([]*big.Int, total)
	for i := range serials {
		serials[i] = pkiSerial(b)
	}
	bodies := make([]pki.CRLPut, b.N)
	for i := range bodies {
		bodies[i] = pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(ca.crl(b, int64(i+1), now, now.Add(24*time.Hour), serials...))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	if err := s.d.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if rep := s.call(b, "PUT", "/1.0/trustlog/pki/crl", bodies[i]); rep.Code != 200 {
			b.Fatalf("PUT crl: %s", rep)
		}
	}
	b.StopTimer()
	if c := s.d.Model().CRL(); c == nil || c.Total != total {
		b.Fatalf("CRL in force: %+v", c)
	}
}
