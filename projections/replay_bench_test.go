package projections_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/projections"
)

// BenchmarkProjectorReplay measures a replay end to end: a new Projector
// over an embedded JetStream stream (file storage, in this process) of
// 100,000 stored events, reached in process or over TCP loopback, from its first Run until Sync returns. "tokens" is token
// churn (TokenIssued and TokenRedeemed pairs, ≈ 0.6 KB per event);
// "certificates" is CertificateTrusted events carrying a P-384
// certificate's PEM (≈ 1.4 KB per event).
func BenchmarkProjectorReplay(b *testing.B) {
	const n = 100_000
	pemText := newCert(b, "replay").PEM
	for _, bc := range []struct {
		name string
		make func(i int) events.Payload
	}{
		{name: "tokens", make: natstest.TokenChurn(baseTime)},
		{name: "certificates", make: func(i int) events.Payload {
			sum := sha256.Sum256(fmt.Appendf(nil, "certificate %d", i))
			return &events.CertificateTrusted{Fingerprint: hex.EncodeToString(sum[:]), Name: fmt.Sprintf("client-%d", i),
				Type: events.CertificateTypeClient, Projects: []string{}, Certificate: pemText}
		}},
	} {
		st, srv := natstest.OpenStore(b)
		bytes := natstest.Fill(b, st, n, baseTime, bc.make)
		// in-process: the client connection of trustlogd to its embedded
		// server (nats.InProcessServer); tcp: over loopback, as a Lambda
		// or an instance of a cluster reaches NATS.
		tcp := natstest.OpenStoreTCP(b, srv)
		for _, via := range []struct {
			name string
			st   *natsstore.Store
		}{{"in-process", st}, {"tcp", tcp}} {
			b.Run(bc.name+"/"+via.name, func(b *testing.B) {
				b.SetBytes(bytes)
				b.ReportAllocs()
				for b.Loop() {
					replayOnce(b, via.st, n)
				}
				b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// replayOnce runs a new projector over st until it has applied n events.
func replayOnce(b *testing.B, st *natsstore.Store, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	if err := p.WaitFor(ctx, uint64(n)); err != nil {
		b.Fatal(err)
	}
	cancel()
	<-done
	if m := p.Snapshot(); m.Seq() != uint64(n) || m.Skipped() != 0 {
		b.Fatalf("model at %d with %d skipped, want %d and none", m.Seq(), m.Skipped(), n)
	}
}
