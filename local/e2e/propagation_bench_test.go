package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// refuses reports whether d answers 403 to cert on GET /1.0/certificates
// (in process, as its HTTPS listener would after the handshake).
func refuses(d *daemon.Daemon, cert *x509.Certificate) bool {
	r := httptest.NewRequest("GET", "/1.0/certificates", nil)
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
	w := httptest.NewRecorder()
	d.Handler().ServeHTTP(w, r)
	return w.Code == http.StatusForbidden
}

// BenchmarkPropagation measures, over many trials, the time from a trust
// removal acknowledged by instance A (DELETE over its unix socket has
// returned: appended to JetStream and applied by A) until instances B and
// C both refuse that client. Three trustlogd instances share one
// JetStream server over loopback TCP.
func BenchmarkPropagation(b *testing.B) {
	ns := natstest.RunServer(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ds []*daemon.Daemon
	for range 3 {
		d, err := daemon.Start(ctx, daemon.Config{Dir: b.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		ds = append(ds, d)
	}
	a := newServer(b, ds[0], nil)
	_, cert := p384Cert(b, "propagated", false)
	body := api.CertificatesPost{Name: "propagated", Certificate: base64.StdEncoding.EncodeToString(cert.Raw)}
	fp := fingerprintOf(cert)
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		if code, env := a.call(b, "POST", "/1.0/certificates", body); code != 201 {
			b.Fatalf("trust: %d %s", code, env.Error)
		}
		for _, d := range ds[1:] { // B and C trust it before the trial starts
			if err := d.Sync(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if code, env := a.call(b, "DELETE", "/1.0/certificates/"+fp, nil); code != 200 {
			b.Fatalf("remove: %d %s", code, env.Error)
		}
		acked := time.Now()
		deadline := acked.Add(5 * time.Second)
		for !refuses(ds[1], cert) || !refuses(ds[2], cert) {
			if time.Now().After(deadline) {
				b.Fatal("B or C still trusts the client 5 s after the removal")
			}
		}
		lat = append(lat, time.Since(acked))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
