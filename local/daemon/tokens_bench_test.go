package daemon_test

// Trust-token benchmarks on the embedded server: trustlogd with its
// embedded JetStream, the admin on the unix socket, redeemers over TLS 1.3
// on loopback. Each benchmark records every operation's latency and reports
// p50 and p99 besides ns/op. Results and method: docs/benchmarks-tokens.md.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
)

// reportTokenLatency reports the p50 and p99 of durs (nearest rank).
func reportTokenLatency(b *testing.B, durs []time.Duration) {
	b.Helper()
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(durs)))) - 1
		return durs[max(i, 0)]
	}
	b.ReportMetric(float64(rank(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(rank(0.99).Microseconds()), "p99-µs")
}

// benchTokenClient is an HTTPS client presenting cert, without the
// per-client cleanup of tokenDaemon.client (benchmarks make thousands).
func benchTokenClient(td *tokenDaemon, cert *tokenCert) *http.Client {
	c := td.client(nil)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert.Pair}
	return c
}

// benchPost posts raw JSON and returns the status code, draining the body.
func benchPost(c *http.Client, url string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// prepareRedemptions issues n tokens and makes one P-256 client
// certificate for each, with a redemption body ready to send.
func prepareRedemptions(b *testing.B, td *tokenDaemon, n int) ([]*tokenCert, [][]byte) {
	b.Helper()
	certs := make([]*tokenCert, n)
	bodies := make([][]byte, n)
	for i := range n {
		tok := td.issue(api.CertificatesPost{Name: "bench"})
		certs[i] = td.newCert("p256")
		raw, err := json.Marshal(map[string]string{"trust_token": tok.Token})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = raw
	}
	return certs, bodies
}

// BenchmarkTokenIssue measures issuing a token as the admin over the unix
// socket (one keep-alive connection): decide, seal, append one event, wait
// for the read model, reply with the operation.
func BenchmarkTokenIssue(b *testing.B) {
	td := startTokenDaemon(b, b.TempDir(), newTestClock())
	body, err := json.Marshal(api.CertificatesPost{Name: "bench", Token: true})
	if err != nil {
		b.Fatal(err)
	}
	td.issue(api.CertificatesPost{Name: "warm-up"}) // open the connection
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		code, err := benchPost(td.admin, "http://unix.socket/1.0/certificates", body)
		durs = append(durs, time.Since(start))
		if err != nil || code != http.StatusAccepted {
			b.Fatalf("issue: %d %v", code, err)
		}
	}
	b.StopTimer()
	reportTokenLatency(b, durs)
}

// BenchmarkTokenRedeem measures one redemption at a time, each with a
// distinct token and certificate. conn=new times the whole request on a
// new connection, TLS 1.3 handshake included, as a client doing
// `remote add` sees it; conn=open opens the connection untimed first and
// times the POST alone: decide, append TokenRedeemed and
// CertificateTrusted atomically, wait for the read model, reply 201.
func BenchmarkTokenRedeem(b *testing.B) {
	for _, open := range []bool{false, true} {
		name := "conn=new"
		if open {
			name = "conn=open"
		}
		b.Run(name, func(b *testing.B) {
			td := startTokenDaemon(b, b.TempDir(), newTestClock())
			certs, bodies := prepareRedemptions(b, td, b.N)
			url := "https://" + td.d.HTTPSAddr() + "/1.0/certificates"
			durs := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c := benchTokenClient(td, certs[i])
				if open {
					b.StopTimer()
					if v := td.whoami(c); v.Auth != "untrusted" {
						b.Fatalf("client %d is %s before redeeming", i, v.Auth)
					}
					b.StartTimer()
				}
				start := time.Now()
				code, err := benchPost(c, url, bodies[i])
				durs = append(durs, time.Since(start))
				if err != nil || code != http.StatusCreated {
					b.Fatalf("redeem %d: %d %v", i, code, err)
				}
				c.CloseIdleConnections()
			}
			b.StopTimer()
			reportTokenLatency(b, durs)
			if n := td.d.Model().NumCertificates(); n != b.N {
				b.Fatalf("%d certificates trusted after %d redemptions", n, b.N)
			}
		})
	}
}

// BenchmarkTokenRedeemParallel measures redemption throughput with many
// clients at once: 16 goroutines per CPU, each iteration redeeming a
// distinct pre-issued token with a distinct certificate over a new TLS
// connection. It reports redemptions per second and the latency each
// client saw under that load.
func BenchmarkTokenRedeemParallel(b *testing.B) {
	td := startTokenDaemon(b, b.TempDir(), newTestClock())
	certs, bodies := prepareRedemptions(b, td, b.N)
	url := "https://" + td.d.HTTPSAddr() + "/1.0/certificates"
	durs := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed sync.Once
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			c := benchTokenClient(td, certs[i])
			start := time.Now()
			code, err := benchPost(c, url, bodies[i])
			durs[i] = time.Since(start)
			c.CloseIdleConnections()
			if err != nil || code != http.StatusCreated {
				failed.Do(func() { b.Errorf("redeem %d: %d %v", i, code, err) })
			}
		}
	})
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "redeems/s")
	reportTokenLatency(b, durs)
	if n := td.d.Model().NumCertificates(); n != b.N {
		b.Fatalf("%d certificates trusted after %d redemptions", n, b.N)
	}
}

// BenchmarkTokenAppend isolates the cost under redemption: a conditional
// append of one event (as issuing, revoking and expiring do) against an
// atomic append of two (TokenRedeemed with CertificateTrusted), on
// trustlogd's own embedded JetStream file store (its sync policy
// included), without HTTP; the events name no token, so folding them
// costs the read model next to nothing.
func BenchmarkTokenAppend(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			st := startTokenDaemon(b, b.TempDir(), newTestClock()).d.Store()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			actor := events.Actor{Name: "bench", Method: "system"}
			seq, err := st.LastSeq(ctx)
			if err != nil {
				b.Fatal(err)
			}
			durs := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				envs := make([]events.Envelope, n)
				for j := range envs {
					var err error
					envs[j], err = events.New(fmt.Sprintf("ev-%d-%d", i, j), "/trustlog/bench", time.Now(), actor, events.TokenRevoked{ID: fmt.Sprint("t-", i)})
					if err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				next, err := st.Append(ctx, seq, "", envs...)
				durs = append(durs, time.Since(start))
				if err != nil {
					b.Fatalf("append %d: %v", i, err)
				}
				seq = next
			}
			b.StopTimer()
			reportTokenLatency(b, durs)
		})
	}
}
