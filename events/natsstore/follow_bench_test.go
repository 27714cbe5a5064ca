package natsstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
)

// BenchmarkFollow measures the transport alone: Follow from the first of
// 100,000 stored events (token events of ≈ 0.6 KB, on an embedded
// JetStream with file storage, in process) to the last, doing nothing with
// each record. It is the ceiling of an end-to-end replay
// (projections.BenchmarkProjectorReplay), which also decodes and folds.
func BenchmarkFollow(b *testing.B) {
	const n = 100_000
	st, srv := natstest.OpenStore(b)
	fillTokens(b, st, n)
	b.Run("in-process", func(b *testing.B) { followAll(b, st, n) })
	tcp := natstest.OpenStoreTCP(b, srv)
	b.Run("tcp", func(b *testing.B) { followAll(b, tcp, n) })
}

func followAll(b *testing.B, st *natsstore.Store, n int) {
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		got := 0
		err := st.Follow(ctx, 1, time.Second, func(rec events.Record, pending uint64) {
			got++
			if rec.Seq != uint64(got) {
				b.Errorf("record %d has sequence %d", got, rec.Seq)
			}
			if pending == 0 && got == n {
				cancel()
			}
		}, nil)
		cancel()
		if got != n {
			b.Fatalf("followed %d of %d events: %v", got, n, err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}

// fillTokens appends n token events (issued, redeemed) in batches of 1000.
func fillTokens(b *testing.B, st *natsstore.Store, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var last uint64
	prev := ""
	for done := 0; done < n; {
		envs := make([]events.Envelope, 0, 1000)
		for i := done; i < min(done+1000, n); i++ {
			id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i/2, i/2)
			var p events.Payload = &events.TokenRedeemed{ID: id, Name: "client", Fingerprint: id}
			if i%2 == 0 {
				sum := sha256.Sum256([]byte(id))
				p = &events.TokenIssued{ID: id, Name: "client", Type: events.CertificateTypeClient, Projects: []string{},
					SecretHash: hex.EncodeToString(sum[:]), SealedSecret: "c2VhbGVk", Fingerprint: hex.EncodeToString(sum[:]),
					Addresses: []string{"127.0.0.1:8443"}, ExpiresAt: testTime.Add(time.Hour)}
			}
			env, err := events.New(fmt.Sprintf("ev-%d", i), "urn:trustlog:bench", testTime, events.Actor{Name: "bench", Method: "system"}, p)
			if err != nil {
				b.Fatal(err)
			}
			envs = append(envs, env)
		}
		seq, err := st.Append(ctx, last, prev, envs...)
		if err != nil {
			b.Fatal(err)
		}
		recs, err := st.Read(ctx, seq, seq)
		if err != nil {
			b.Fatal(err)
		}
		last, prev = seq, events.Hash(recs[0].Raw)
		done += len(envs)
	}
}
