package natsstore_test

import (
	"context"
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
	natstest.Fill(b, st, n, testTime, natstest.TokenChurn(testTime))
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
