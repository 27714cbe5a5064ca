package projections

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustlog/trustlog/events"
)

// Feed is the ordered event source a Projector follows. natsstore.Store
// implements it. Implementations must be safe for concurrent use.
type Feed interface {
	// LastSeq returns the sequence of the newest stored event, 0 if none.
	LastSeq(ctx context.Context) (uint64, error)
	// Follow calls fn with each record from sequence from on, in order, with
	// the number of records still pending behind it, and calls contact
	// whenever it has heard from the stream. It returns when ctx ends
	// (with ctx.Err()) or when the feed fails.
	Follow(ctx context.Context, from uint64, idle time.Duration, fn func(rec events.Record, pending uint64), contact func(time.Time)) error
}

// replayBatch is how many records a replay folds at a time.
const replayBatch = 1024

// Projector keeps the read model current: it replays the stream, then
// follows it, and publishes an immutable snapshot after each caught-up
// event. The fold checks the hash chain as it goes, from the start model
// on (the first event after a stored snapshot must chain onto the
// snapshot's hash): the first break stays in every later model
// (Model.ChainBreak) and is logged once, at Error. Its methods are safe
// for concurrent use.
type Projector struct {
	feed Feed
	log  *slog.Logger
	idle time.Duration

	cur     atomic.Pointer[Model]
	contact atomic.Int64 // unix nanoseconds of the last contact with the stream

	mu     sync.Mutex
	notify chan struct{} // closed and replaced at each new snapshot
	failed error         // set when Run has stopped for good

	breakLogged bool // only Run reads and sets it
}

// ProjectorConfig configures a Projector. The zero value is valid.
type ProjectorConfig struct {
	// Logger receives fold errors and feed reconnections; nil means slog.Default().
	Logger *slog.Logger
	// Idle is how long the feed waits for an event before checking the
	// stream is reachable; 0 means one second.
	Idle time.Duration
	// Start is a model to resume from (a stored snapshot); nil means Empty.
	Start *Model
}

// NewProjector returns a projector over feed. Call Run to start it.
func NewProjector(feed Feed, cfg ProjectorConfig) *Projector {
	p := &Projector{feed: feed, log: cfg.Logger, idle: cfg.Idle, notify: make(chan struct{})}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.idle <= 0 {
		p.idle = time.Second
	}
	start := cfg.Start
	if start == nil {
		start = Empty
	}
	p.cur.Store(start)
	return p
}

// Snapshot returns the current model. It never blocks.
func (p *Projector) Snapshot() *Model { return p.cur.Load() }

// LastContact returns when the projector last heard from the stream.
func (p *Projector) LastContact() time.Time {
	n := p.contact.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// WaitFor blocks until the model has applied sequence seq, ctx ends, or the
// projector has stopped.
func (p *Projector) WaitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.Lock()
		ch, failed := p.notify, p.failed
		p.mu.Unlock()
		if p.cur.Load().seq >= seq {
			return nil
		}
		if failed != nil {
			return failed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sync waits until the model has applied every event stored when Sync was
// called.
func (p *Projector) Sync(ctx context.Context) error {
	last, err := p.feed.LastSeq(ctx)
	if err != nil {
		return err
	}
	return p.WaitFor(ctx, last)
}

func (p *Projector) publish(m *Model) {
	p.cur.Store(m)
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// Run replays and follows the feed until ctx ends, reconnecting with a
// bounded backoff when the feed fails. It returns ctx.Err().
func (p *Projector) Run(ctx context.Context) error {
	b := NewBuilder(p.Snapshot())
	p.reportBreak(b)
	backoff := 50 * time.Millisecond
	defer func() {
		p.mu.Lock()
		p.failed = errors.New("projections: projector stopped")
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}()
	for {
		if last, err := p.feed.LastSeq(ctx); err == nil {
			p.touch(time.Now())
			if last <= b.Seq() {
				// Nothing to replay: the current model is caught up.
				p.publish(b.Model())
			}
		}
		// While replaying, records are folded in batches so that their
		// decoding runs on every processor; a caught-up record is folded
		// and published at once.
		var batch []events.Record
		report := func(seq uint64, err error) {
			p.log.Error("projection: event not applied", "seq", seq, "err", err)
		}
		err := p.feed.Follow(ctx, b.Seq()+1, p.idle, func(rec events.Record, pending uint64) {
			batch = append(batch, rec)
			if pending > 0 && len(batch) < replayBatch {
				return
			}
			b.ApplyAll(batch, report)
			batch = batch[:0]
			p.reportBreak(b)
			if pending == 0 {
				p.publish(b.Model())
			}
		}, p.touch)
		// What the feed delivered before it ended is folded too, so that
		// following resumes after it.
		b.ApplyAll(batch, report)
		p.reportBreak(b)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("projection: feed interrupted, reconnecting", "err", err, "applied", b.Seq(), "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (p *Projector) touch(t time.Time) { p.contact.Store(t.UnixNano()) }

// reportBreak logs the first break of the hash chain, once: the model
// keeps it (Model.ChainBreak), and hosts refuse to vouch for the trust
// store from then on.
func (p *Projector) reportBreak(b *Builder) {
	if p.breakLogged {
		return
	}
	if seq, why := b.ChainBreak(); seq != 0 {
		p.breakLogged = true
		p.log.Error("projection: the event log is broken; this instance will not vouch for its trust store until it restarts",
			"seq", seq, "reason", why)
	}
}
