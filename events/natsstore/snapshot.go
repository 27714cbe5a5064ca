package natsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
)

// ErrNoSnapshot reports that no usable snapshot is stored.
var ErrNoSnapshot = errors.New("natsstore: no snapshot")

// snapshotObject is the object holding the latest snapshot.
const snapshotObject = "model"

// Snapshot is a stored read model: opaque bytes (projections' encoding)
// and the stream position they stand for.
type Snapshot struct {
	Data []byte
	// Seq and Hash are the sequence and chain hash of the last event folded in.
	Seq  uint64
	Hash string
}

// SnapshotBucket returns the Object Store bucket holding snapshots.
func (s *Store) SnapshotBucket() string { return s.stream + "_SNAPSHOTS" }

// SaveSnapshot stores a snapshot, replacing the previous one, creating the
// bucket with replicas copies if it does not exist. Snapshots are derived
// data: losing one costs a longer replay, nothing else. Whoever may write
// the bucket can make cold starts trust what it wrote, so give it the same
// permissions as the stream.
func (s *Store) SaveSnapshot(ctx context.Context, snap Snapshot, replicas int) error {
	if replicas <= 0 {
		replicas = 1
	}
	// An existing bucket is used as it is (its replicas were chosen when it
	// was made); only a missing one is created.
	obs, err := s.js.ObjectStore(ctx, s.SnapshotBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		obs, err = s.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: s.SnapshotBucket(), Description: "Trustlog read-model snapshots", Storage: jetstream.FileStorage, Replicas: replicas,
		})
	}
	if err != nil {
		return fmt.Errorf("natsstore: snapshot bucket: %w", err)
	}
	meta := jetstream.ObjectMeta{Name: snapshotObject, Metadata: map[string]string{
		"seq": strconv.FormatUint(snap.Seq, 10), "hash": snap.Hash,
	}}
	if _, err := obs.Put(ctx, meta, bytes.NewReader(snap.Data)); err != nil {
		return fmt.Errorf("natsstore: save snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot returns the stored snapshot after checking that the event
// it claims to end with is in the stream with that chain hash. It returns
// ErrNoSnapshot when there is none, and another error when it does not
// match the stream; either way the caller replays from the start.
func (s *Store) LoadSnapshot(ctx context.Context) (Snapshot, error) {
	obs, err := s.js.ObjectStore(ctx, s.SnapshotBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return Snapshot{}, ErrNoSnapshot
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("natsstore: snapshot bucket: %w", err)
	}
	info, err := obs.GetInfo(ctx, snapshotObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Snapshot{}, ErrNoSnapshot
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("natsstore: snapshot: %w", err)
	}
	seq, err := strconv.ParseUint(info.Metadata["seq"], 10, 64)
	if err != nil || seq == 0 {
		return Snapshot{}, fmt.Errorf("natsstore: snapshot with a bad sequence %q", info.Metadata["seq"])
	}
	recs, err := s.Read(ctx, seq, seq)
	if err != nil || len(recs) != 1 || events.Hash(recs[0].Raw) != info.Metadata["hash"] {
		return Snapshot{}, fmt.Errorf("natsstore: the snapshot does not match event %d of the stream", seq)
	}
	data, err := obs.GetBytes(ctx, snapshotObject)
	if err != nil {
		return Snapshot{}, fmt.Errorf("natsstore: snapshot: %w", err)
	}
	return Snapshot{Data: data, Seq: seq, Hash: info.Metadata["hash"]}, nil
}

// LastSnapshotSeq returns the sequence of the stored snapshot, 0 if none.
func (s *Store) LastSnapshotSeq(ctx context.Context) uint64 {
	obs, err := s.js.ObjectStore(ctx, s.SnapshotBucket())
	if err != nil {
		return 0
	}
	info, err := obs.GetInfo(ctx, snapshotObject)
	if err != nil {
		return 0
	}
	seq, _ := strconv.ParseUint(info.Metadata["seq"], 10, 64)
	return seq
}

// Positioned is a read model that knows where in the stream it stands.
type Positioned interface {
	Seq() uint64
	Hash() string
}

// RestoreModel loads the stored snapshot and decodes it with decode (such
// as projections.DecodeSnapshot), checking that the decoded model stands
// where the snapshot says: the sequence and chain hash of an event in the
// stream (LoadSnapshot), so that the next event must chain onto it. It
// returns ErrNoSnapshot when there is none, and an error for a snapshot
// that does not match the stream or that decode refuses.
func RestoreModel[M Positioned](ctx context.Context, s *Store, decode func([]byte) (M, error)) (M, error) {
	var zero M
	snap, err := s.LoadSnapshot(ctx)
	if err != nil {
		return zero, err
	}
	m, err := decode(snap.Data)
	if err != nil {
		return zero, err
	}
	if m.Seq() != snap.Seq || m.Hash() != snap.Hash {
		return zero, fmt.Errorf("natsstore: the snapshot's model stands at %d (hash %q), its label and the stream at %d (hash %q)",
			m.Seq(), m.Hash(), snap.Seq, snap.Hash)
	}
	return m, nil
}

// SaveModel stores m, encoded with encode (such as
// projections.EncodeSnapshot), as the snapshot.
func SaveModel[M Positioned](ctx context.Context, s *Store, m M, encode func(M) ([]byte, error), replicas int) (int, error) {
	raw, err := encode(m)
	if err != nil {
		return 0, err
	}
	return len(raw), s.SaveSnapshot(ctx, Snapshot{Data: raw, Seq: m.Seq(), Hash: m.Hash()}, replicas)
}
