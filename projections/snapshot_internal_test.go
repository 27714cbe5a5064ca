package projections

import (
	"errors"
	"testing"
)

// TestDecodeSnapshotOfBrokenChainRefused: a snapshot that records a break
// of the chain (written before EncodeSnapshot refused such models) is not
// used, so the cold start replays and finds the break itself.
func TestDecodeSnapshotOfBrokenChainRefused(t *testing.T) {
	t.Parallel()
	m := *Empty
	m.seq, m.hash, m.broken, m.brokenWhy = 3, "hash of 3", 2, "its prevhash does not match the hash of event 1"
	raw, err := encodeSnapshot(&m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeSnapshot(raw); !errors.Is(err, ErrSnapshotBroken) {
		t.Errorf("DecodeSnapshot of a snapshot broken at 2: %v, want ErrSnapshotBroken", err)
	}
	m.broken, m.brokenWhy = 0, ""
	raw, err = encodeSnapshot(&m)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeSnapshot(raw); err != nil || got.Seq() != 3 || got.ChainBreak() != 0 {
		t.Errorf("DecodeSnapshot of an intact one: %v", err)
	}
}
