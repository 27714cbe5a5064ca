package natsstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
)

// positioned is a stand-in read model: its bytes are its hash.
type positioned struct {
	seq  uint64
	hash string
}

func (p positioned) Seq() uint64  { return p.seq }
func (p positioned) Hash() string { return p.hash }

func TestSnapshots(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := st.LoadSnapshot(ctx); !errors.Is(err, natsstore.ErrNoSnapshot) {
		t.Fatalf("LoadSnapshot on an empty bucket: %v, want ErrNoSnapshot", err)
	}
	env, _ := events.New("e1", "urn:test", time.Unix(0, 0), events.Actor{}, events.ConfigChanged{Key: "user.a", Value: "1"})
	seq, err := st.Append(ctx, 0, "", env)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := st.Read(ctx, seq, seq)
	hash := events.Hash(recs[0].Raw)
	encode := func(p positioned) ([]byte, error) { return []byte(p.hash), nil }
	decode := func(raw []byte) (positioned, error) { return positioned{seq: seq, hash: string(raw)}, nil }

	if _, err := natsstore.SaveModel(ctx, st, positioned{seq: seq, hash: hash}, encode, 1); err != nil {
		t.Fatal(err)
	}
	if got := st.LastSnapshotSeq(ctx); got != seq {
		t.Errorf("LastSnapshotSeq = %d, want %d", got, seq)
	}
	m, err := natsstore.RestoreModel(ctx, st, decode)
	if err != nil || m.hash != hash {
		t.Fatalf("RestoreModel = %+v, %v", m, err)
	}
	// A snapshot whose model stands elsewhere than its label says (on
	// another history) is refused, so the next event is never folded onto
	// a hash it does not chain onto.
	elsewhere := func(raw []byte) (positioned, error) { return positioned{seq: seq, hash: "another history"}, nil }
	if _, err := natsstore.RestoreModel(ctx, st, elsewhere); err == nil || !strings.Contains(err.Error(), "another history") {
		t.Errorf("snapshot of another history: %v, want a mismatch error", err)
	}
	// A snapshot whose label does not match the stream is refused.
	if err := st.SaveSnapshot(ctx, natsstore.Snapshot{Data: []byte("x"), Seq: seq, Hash: "forged"}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := natsstore.RestoreModel(ctx, st, decode); err == nil || errors.Is(err, natsstore.ErrNoSnapshot) {
		t.Errorf("forged snapshot: %v, want a mismatch error", err)
	}
	// A snapshot beyond the stream's end is refused too.
	if err := st.SaveSnapshot(ctx, natsstore.Snapshot{Data: []byte(hash), Seq: seq + 5, Hash: hash}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LoadSnapshot(ctx); err == nil {
		t.Error("a snapshot past the end of the stream was accepted")
	}
}
