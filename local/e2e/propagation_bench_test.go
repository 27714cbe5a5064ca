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

	natsserver "github.com/nats-io/nats-server/v2/server"

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

// propagationWait bounds every wait of a trial.
const propagationWait = 5 * time.Second

// BenchmarkPropagation measures, over many trials, the time from a trust
// removal acknowledged by instance A (DELETE over its unix socket has
// returned: appended to JetStream and applied by A) until instances B and
// C have both applied it, after which each refuses that client (checked
// after the clock stops). It reports p50, p90, p99 and max in µs.
//
//   - single-node: the three trustlogd instances share one embedded
//     JetStream server over loopback TCP (R1 stream).
//   - r3-cluster: a 3-node JetStream cluster on loopback
//     (natstest.RunCluster) with an R3 stream; A connects to node n1 only,
//     B to n2 and C to n3 (each daemon is given that node's client URL
//     alone), so an append goes A→n1→stream leader→quorum and reaches B and
//     C through their own nodes, over real routes. Which node leads the
//     stream is up to the cluster; it is logged.
func BenchmarkPropagation(b *testing.B) {
	b.Run("single-node", func(b *testing.B) {
		url := natstest.RunServer(b).ClientURL()
		propagationTrials(b, []string{url, url, url}, 0)
	})
	b.Run("r3-cluster", func(b *testing.B) {
		nc := natstest.RunCluster(b, 3)
		var urls []string
		for _, s := range nc.Servers { // A on n1, B on n2, C on n3
			urls = append(urls, s.ClientURL())
		}
		propagationTrials(b, urls, 3)
		for i, s := range nc.Servers {
			if n := daemonConns(b, s); n != 1 {
				b.Fatalf("node n%d serves %d trustlogd connections, want 1 (A, B, C on different nodes)", i+1, n)
			}
		}
		b.Logf("stream leader: n%d", nc.StreamLeader("TRUSTLOG")+1)
	})
}

// daemonConns counts the trustlogd client connections on s.
func daemonConns(b *testing.B, s *natsserver.Server) int {
	b.Helper()
	cz, err := s.Connz(&natsserver.ConnzOptions{})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, c := range cz.Conns {
		if c.Name == "trustlogd" {
			n++
		}
	}
	return n
}

// propagationTrials starts instances A, B and C on urls[0..2] with the
// given stream replicas and runs the propagation trial b.N times.
func propagationTrials(b *testing.B, urls []string, replicas int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ds []*daemon.Daemon
	for _, url := range urls {
		d, err := daemon.Start(ctx, daemon.Config{Dir: b.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: url, Replicas: replicas,
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
		sctx, scancel := context.WithTimeout(ctx, propagationWait)
		for _, d := range ds[1:] { // B and C trust it before the trial starts
			if err := d.Sync(sctx); err != nil {
				scancel()
				b.Fatal(err)
			}
		}
		scancel()
		b.StartTimer()
		if code, env := a.call(b, "DELETE", "/1.0/certificates/"+fp, nil); code != 200 {
			b.Fatalf("remove: %d %s", code, env.Error)
		}
		acked := time.Now()
		// B and C are waited for on their models' change notifications, not
		// polled: a polling loop would hold one of the machine's two cores.
		removal := ds[0].Model().Seq()
		wctx, wcancel := context.WithTimeout(ctx, propagationWait)
		for _, d := range ds[1:] {
			if err := d.WaitFor(wctx, removal); err != nil {
				wcancel()
				b.Fatalf("B or C has not applied the removal within %v: %v", propagationWait, err)
			}
		}
		wcancel()
		lat = append(lat, time.Since(acked))
		if !refuses(ds[1], cert) || !refuses(ds[2], cert) {
			b.Fatal("B or C still trusts the client once it has applied the removal")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*90/100].Microseconds()), "p90-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
