package e2e_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/lambda/host"
	"github.com/trustlog/trustlog/local/daemon"
	"github.com/trustlog/trustlog/projections"
)

// lambdaBenchStack is trustlogd filled with n trusted certificates, on a
// JetStream server reachable over TCP, plus a client certificate it trusts.
func lambdaBenchStack(b *testing.B, n int) (string, lambdaReq) {
	b.Helper()
	url, req, _ := filledLambdaStack(b, func(b *testing.B, d *daemon.Daemon) { fillTrustStore(b, d, n) })
	return url, req
}

// BenchmarkLambdaColdStart measures a cold start of a function's host over
// a stream of 10,000 trusted certificates: connect to NATS, build the read
// model (replaying the whole stream, or decoding the stored snapshot and
// replaying nothing after it), build the service, and answer a first
// authenticated request (HTTP API event, certificate from the gateway).
func BenchmarkLambdaColdStart(b *testing.B) {
	url, req := lambdaBenchStack(b, 10_000)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cold := func(b *testing.B) { coldStarts(b, url, req) }
	b.Run("replay", cold)
	h, err := host.Start(context.Background(), host.Config{NATSURL: url, Gateway: host.GatewayHTTP, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	if saved, err := h.SaveSnapshot(context.Background(), 0); !saved || err != nil {
		b.Fatalf("save snapshot: %v %v", saved, err)
	}
	h.Close()
	b.Run("snapshot", cold)
}

// coldStarts runs b.N cold starts of a function's host against url: from
// NewLazy until req, its first request, is answered 200. Closing the host
// and collecting its garbage are not timed.
func coldStarts(b *testing.B, url string, req lambdaReq) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for b.Loop() {
		h := host.NewLazy(host.Config{NATSURL: url, Gateway: host.GatewayHTTP, Functions: []string{"certificates"}, Logger: log})
		if got := invokeLambda(b, host.GatewayHTTP, h, req); got.Status != 200 {
			b.Fatalf("first request: %+v", got)
		}
		b.StopTimer()
		h.Close()
		runtime.GC()
		b.StartTimer()
	}
}

// filledLambdaStack is trustlogd on a JetStream server reachable over TCP,
// filled by fill, plus a client certificate it trusts (appended directly,
// as the last event, so that no HTTP server or secret scan is involved).
// The daemon's own snapshots are put off (a day apart) so that the only
// snapshot is the one the benchmark saves: host.Start then replays the
// whole stream, and no snapshot is encoded while cold starts are timed.
// It returns the NATS URL, the first request of a cold start, and how long
// fill took.
func filledLambdaStack(b *testing.B, fill func(*testing.B, *daemon.Daemon)) (string, lambdaReq, time.Duration) {
	b.Helper()
	ns := natstest.RunServer(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: b.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		SnapshotInterval: 24 * time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	start := time.Now()
	fill(b, d)
	took := time.Since(start)
	pair, cert := p384Cert(b, "lambda-client", false)
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	m := d.Model()
	env, err := events.New("lambda-client", "/bench", time.Now(), events.Actor{Name: "bench", Method: "system"},
		events.CertificateTrusted{Fingerprint: fingerprintOf(cert), Name: "lambda-client", Type: events.CertificateTypeClient,
			Projects: []string{}, Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Store().Append(ctx, m.Seq(), m.Hash(), env); err != nil {
		b.Fatal(err)
	}
	return ns.ClientURL(), lambdaReq{method: "GET", path: "/1.0/certificates/" + fingerprintOf(cert), cert: &pair}, took
}

// churnUnit is how many events fillChurn appends per unit; 2 of them are
// certificates that stay trusted.
const churnUnit = 20

// churnEvery is the event time between two units of fillChurn.
const churnEvery = 10 * time.Minute

// fillChurn appends units*churnUnit events in atomic batches of 1000 (the
// JetStream limit), shaped like a long-lived trust store's history. Each
// unit is:
//   - 2 tokens issued, then redeemed, each with the CertificateTrusted the
//     redemption causes (6 events; these 2 certificates stay);
//   - 4 tokens issued, then revoked (8 events);
//   - 3 certificates trusted, then removed (6 events).
//
// So 50,000 units are 1,000,000 events leaving 100,000 certificates in the
// trust store. Units are churnEvery apart in event time, ending now (50,000
// units: a year of history), so the model keeps only the tokens that ended
// within projections.EndedTokenRetention (a few units' worth), as it
// would after a real year. Payloads are filled as the daemon's handlers
// fill them, except that certificates carry no PEM (only the fingerprint
// is matched on the request path, as in fillTrustStore) and sealed secrets
// are random bytes of the real length.
func fillChurn(b *testing.B, d *daemon.Daemon, units int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const perBatch = 1000 / churnUnit
	actor := events.Actor{Name: "bench", Method: "unix"}
	serverFP := d.Fingerprint()
	first := time.Now().Add(-time.Duration(units) * churnEvery)
	var n int        // events made so far: their ids
	var at time.Time // the current unit's event time
	add := func(envs []events.Envelope, p events.Payload) []events.Envelope {
		n++
		env, err := events.New(fmt.Sprintf("churn-%d", n), "/bench", at, actor, p)
		if err != nil {
			b.Fatal(err)
		}
		return append(envs, env)
	}
	random := func(size int) []byte {
		buf := make([]byte, size)
		rand.Read(buf)
		return buf
	}
	issued := func(id, name string) events.TokenIssued {
		sum := sha256.Sum256([]byte(hex.EncodeToString(random(32)))) // as the handler: SHA-256 of the secret's hex text
		return events.TokenIssued{
			ID: id, Name: name, Type: events.CertificateTypeClient, Projects: []string{},
			SecretHash:   hex.EncodeToString(sum[:]),
			SealedSecret: base64.StdEncoding.EncodeToString(random(12 + 64 + 16)), // nonce ‖ sealed 64-byte hex secret ‖ tag
			Fingerprint:  serverFP, Addresses: []string{"10.0.0.1:8443"}, ExpiresAt: at.Add(24 * time.Hour).UTC(),
		}
	}
	uuid := func() string {
		u := random(16)
		u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
		return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	fp := func() string { return hex.EncodeToString(random(32)) }
	for done := 0; done < units; {
		if err := d.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		m := d.Model()
		envs := make([]events.Envelope, 0, perBatch*churnUnit)
		for u := 0; u < perBatch && done+u < units; u++ {
			k := done + u
			at = first.Add(time.Duration(k) * churnEvery)
			for i := range 2 {
				id, name, f := uuid(), fmt.Sprintf("client-%d-%d", k, i), fp()
				envs = add(envs, issued(id, name))
				envs = add(envs, events.TokenRedeemed{ID: id, Name: name, Fingerprint: f})
				envs = add(envs, events.CertificateTrusted{Fingerprint: f, Name: name, Type: events.CertificateTypeClient, Projects: []string{}})
			}
			var revoke [4]events.TokenRevoked
			for i := range revoke {
				revoke[i] = events.TokenRevoked{ID: uuid(), Name: fmt.Sprintf("temp-%d-%d", k, i)}
				envs = add(envs, issued(revoke[i].ID, revoke[i].Name))
			}
			var remove [3]events.CertificateRemoved
			for i := range remove {
				remove[i] = events.CertificateRemoved{Fingerprint: fp(), Name: fmt.Sprintf("old-%d-%d", k, i)}
				envs = add(envs, events.CertificateTrusted{Fingerprint: remove[i].Fingerprint, Name: remove[i].Name,
					Type: events.CertificateTypeClient, Projects: []string{}})
			}
			for _, p := range revoke {
				envs = add(envs, p)
			}
			for _, p := range remove {
				envs = add(envs, p)
			}
		}
		if _, err := d.Store().Append(ctx, m.Seq(), m.Hash(), envs...); err != nil {
			b.Fatal(err)
		}
		done += len(envs) / churnUnit
	}
	if err := d.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	if got, want := d.Model().NumCertificates(), 2*units; got != want {
		b.Fatalf("trust store holds %d entries, want %d", got, want)
	}
	if got := len(d.Model().Tokens()); got >= 6*units && time.Duration(units)*churnEvery > 2*projections.EndedTokenRetention {
		b.Fatalf("model holds %d tokens: ended tokens were not pruned", got)
	}
}

// BenchmarkLambdaColdStart1M measures the cold start of a function's host
// from the stored snapshot over a long history. "snapshot": 1,000,000
// events (fillChurn: a year in which 100,000 certificates were trusted
// through tokens and stay, 200,000 more tokens were issued and revoked,
// 150,000 certificates were trusted and removed). "snapshot-1M-certs":
// 1,000,000 trusted certificates without PEM (fillTrustStore). Each stack
// is filled once, replayed from the start by host.Start to save the
// snapshot, then cold-started from it: connect, load and decode the
// snapshot (no event after it), build the service, answer a first
// authenticated request. Besides ns/op it reports the stream's length
// (events), the model's certificates and tokens, the snapshot's size
// (snapshot-B), and how long filling (fill-s) and the full replay by
// host.Start (replay-s) took.
func BenchmarkLambdaColdStart1M(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(fill func(*testing.B, *daemon.Daemon)) func(*testing.B) {
		return func(b *testing.B) {
			url, req, fillTook := filledLambdaStack(b, fill)
			start := time.Now()
			h, err := host.Start(context.Background(), host.Config{NATSURL: url, Gateway: host.GatewayHTTP, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			replayTook := time.Since(start)
			m := h.Model()
			raw, err := projections.EncodeSnapshot(m) // the bytes SaveSnapshot stores, for their size
			if err != nil {
				b.Fatal(err)
			}
			if saved, err := h.SaveSnapshot(context.Background(), 0); !saved || err != nil {
				b.Fatalf("save snapshot: %v %v", saved, err)
			}
			h.Close()
			b.Logf("%d events (%d certificates, %d tokens): filled in %v, replayed by host.Start in %v; snapshot %d bytes",
				m.Seq(), m.NumCertificates(), len(m.Tokens()), fillTook.Round(time.Millisecond), replayTook.Round(time.Millisecond), len(raw))
			seq, size, ncerts, ntokens := m.Seq(), len(raw), m.NumCertificates(), len(m.Tokens())
			m, raw = nil, nil
			runtime.GC()
			coldStarts(b, url, req)
			b.ReportMetric(float64(seq), "events")
			b.ReportMetric(float64(ncerts), "certs")
			b.ReportMetric(float64(ntokens), "tokens")
			b.ReportMetric(float64(size), "snapshot-B")
			b.ReportMetric(fillTook.Seconds(), "fill-s")
			b.ReportMetric(replayTook.Seconds(), "replay-s")
		}
	}
	b.Run("snapshot", run(func(b *testing.B, d *daemon.Daemon) { fillChurn(b, d, 1_000_000/churnUnit) }))
	b.Run("snapshot-1M-certs", run(func(b *testing.B, d *daemon.Daemon) { fillTrustStore(b, d, 1_000_000) }))
	// Not 1M events: 100,000 trusted certificates that carry their PEM, as
	// real entries do (the fills above carry none), for the snapshot size
	// of a real trust store of that size.
	b.Run("snapshot-100k-certs-with-pem", run(func(b *testing.B, d *daemon.Daemon) {
		_, cert := p384Cert(b, "filler", false)
		fillTrustStoreWith(b, d, 100_000, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})))
	}))
}

// BenchmarkLambdaWarm measures one warm invocation: the adapter, the
// catch-up check (one stream-info request to NATS), gateway certificate
// extraction and authn, and the handler, with 10,000 trusted certificates.
func BenchmarkLambdaWarm(b *testing.B) {
	url, req := lambdaBenchStack(b, 10_000)
	h, err := host.Start(context.Background(), host.Config{NATSURL: url, Gateway: host.GatewayHTTP, Functions: []string{"certificates"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got := invokeLambda(b, host.GatewayHTTP, h, req); got.Status != 200 {
			b.Fatalf("invocation: %+v", got)
		}
	}
}
