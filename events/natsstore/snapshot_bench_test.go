package natsstore_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
)

// BenchmarkLoadSnapshot measures fetching a stored snapshot of 66 MB (the
// size of 100,000 trusted P-384 certificates with their PEM) from the
// Object Store of an embedded JetStream server, as a cold start does
// before decoding it.
func BenchmarkLoadSnapshot(b *testing.B) {
	st, _ := natstest.OpenStore(b)
	data := make([]byte, 66<<20)
	rand.Read(data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, _ := events.New("e1", "urn:bench", time.Unix(0, 0), events.Actor{}, events.ConfigChanged{Key: "user.a", Value: "1"})
	seq, err := st.Append(ctx, 0, "", env)
	if err != nil {
		b.Fatal(err)
	}
	recs, err := st.Read(ctx, seq, seq)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.SaveSnapshot(ctx, natsstore.Snapshot{Data: data, Seq: seq, Hash: events.Hash(recs[0].Raw)}, 1); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		got, err := st.LoadSnapshot(ctx)
		if err != nil || len(got.Data) != len(data) {
			b.Fatalf("loaded %d bytes: %v", len(got.Data), err)
		}
	}
}
