package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/projections"
)

// Snapshot policy defaults: a snapshot of the read model is stored
// (JetStream Object Store) once the stream has moved DefaultSnapshotEvery
// events past the last one, checked every DefaultSnapshotInterval. Cold
// starts (a restarted daemon, a new Lambda) then replay only the tail.
const (
	DefaultSnapshotEvery    = 1000
	DefaultSnapshotInterval = time.Minute
)

// restoreSnapshot returns the stored snapshot's model when it matches the
// stream, or nil (replay from the start).
func restoreSnapshot(ctx context.Context, store *natsstore.Store, log *slog.Logger) *projections.Model {
	m, err := natsstore.RestoreModel(ctx, store, projections.DecodeSnapshot)
	if err != nil {
		if !errors.Is(err, natsstore.ErrNoSnapshot) {
			log.Warn("snapshot not used: replaying the whole stream", "err", err)
		}
		return nil
	}
	log.Info("read model restored from a snapshot", "seq", m.Seq(), "trusted_certificates", m.NumCertificates())
	return m
}

// saveSnapshot stores the current model if it is SnapshotEvery events past
// the stored one, and returns the sequence stored (or last).
func (d *Daemon) saveSnapshot(ctx context.Context, last uint64) uint64 {
	m := d.proj.Snapshot()
	if m.Seq() < last+d.cfg.SnapshotEvery {
		return last
	}
	n, err := natsstore.SaveModel(ctx, d.store, m, projections.EncodeSnapshot, d.cfg.Replicas)
	if err != nil {
		d.log.Warn("snapshot not saved", "err", err)
		return last
	}
	d.log.Info("snapshot saved", "seq", m.Seq(), "bytes", n)
	return m.Seq()
}

func (d *Daemon) runSnapshots(ctx context.Context) {
	last := d.store.LastSnapshotSeq(ctx)
	tick := time.NewTicker(d.cfg.SnapshotInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			last = d.saveSnapshot(ctx, last)
		}
	}
}
