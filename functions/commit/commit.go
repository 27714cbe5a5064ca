// Package commit runs a write: it decides against the read model at sequence
// N, appends the resulting events expecting N, and on a conflict catches up
// and decides again, a bounded number of times. It then waits until the read
// model has applied its own events, so the caller reads its writes. Every
// decision is held to the rule no single handler may forget: a certificate
// belongs to one principal, across the trust store and the TLS identities.
package commit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// ReadModel is the read side a Committer decides against.
type ReadModel interface {
	// Snapshot returns the current model without blocking.
	Snapshot() *projections.Model
	// WaitFor blocks until the model has applied seq or ctx ends.
	WaitFor(ctx context.Context, seq uint64) error
}

// Log is the append side. Append stores envs atomically after the event at
// sequence expect (whose chain hash is prevHash) and returns the sequence of
// the last one; it returns an error wrapping events.ErrConflict when the
// stream has moved past expect, and one wrapping events.ErrUnavailable when
// it cannot reach the stream. It must be safe for concurrent use.
type Log interface {
	Append(ctx context.Context, expect uint64, prevHash string, envs ...events.Envelope) (uint64, error)
}

// PayloadLimit is implemented by a Log whose messages have a size limit
// (natsstore.Store: the NATS server's max_payload). MaxPayload returns the
// largest encoded event, with its message headers, the log stores.
type PayloadLimit interface {
	MaxPayload() int64
}

// DefaultMaxPayload is the limit assumed for a Log that does not report
// one: the NATS default max_payload, 1 MiB.
const DefaultMaxPayload = 1 << 20

// Decision computes the events of a write from the model. Returning an
// error appends nothing; returning no events is a successful no-op. Events
// that would give a certificate to a second principal are refused with a
// 409 before they are appended, whatever the decision checked itself.
type Decision func(m *projections.Model) ([]events.Payload, error)

// ErrTooManyConflicts reports that the stream kept moving under a write.
var ErrTooManyConflicts = errors.New("commit: too many concurrent changes, try again")

// ErrUnavailable is the answer to a write the log could not take because
// the event stream is unreachable (events.ErrUnavailable): 503, as reads
// get once the read model is stale. Do returns it wrapping the cause.
var ErrUnavailable = &response.Error{Status: http.StatusServiceUnavailable,
	Message: "Service unavailable: the event stream is unreachable"}

// Committer runs decisions. The zero value is not usable; fill every field
// but MaxAttempts (default 8).
type Committer struct {
	Model  ReadModel
	Log    Log
	Now    func() time.Time
	NewID  func() string
	Source string
	// MaxAttempts bounds the decide-append cycles of one write.
	MaxAttempts int

	// mu serialises the writes of this instance: a write decided while
	// another is in flight would only conflict with it. Conflicts then come
	// from other instances alone.
	mu sync.Mutex
}

// MaxPayload returns the largest encoded event (envelope and message
// headers included) the log stores: its own limit if it reports one
// (PayloadLimit), else DefaultMaxPayload.
func (c *Committer) MaxPayload() int64 {
	if l, ok := c.Log.(PayloadLimit); ok {
		if n := l.MaxPayload(); n > 0 {
			return n
		}
	}
	return DefaultMaxPayload
}

// Do runs decide until its events are appended or it fails, and returns the
// model that includes them.
func (c *Committer) Do(ctx context.Context, actor events.Actor, decide Decision) (*projections.Model, error) {
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for range attempts {
		m := c.Model.Snapshot()
		payloads, err := decide(m)
		if err == nil {
			err = checkOwnership(m, payloads)
		}
		if err != nil {
			return m, err
		}
		if len(payloads) == 0 {
			return m, nil
		}
		envs := make([]events.Envelope, len(payloads))
		at := c.Now()
		for i, p := range payloads {
			if envs[i], err = events.New(c.NewID(), c.Source, at, actor, p); err != nil {
				return m, err
			}
		}
		seq, err := c.Log.Append(ctx, m.Seq(), m.Hash(), envs...)
		if errors.Is(err, events.ErrConflict) {
			// Someone else wrote first: wait until we have seen it, decide again.
			if err := c.Model.WaitFor(ctx, m.Seq()+1); err != nil {
				return m, fmt.Errorf("commit: catching up: %w", err)
			}
			continue
		}
		if errors.Is(err, events.ErrUnavailable) {
			return m, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if err != nil {
			return m, err
		}
		if err := c.Model.WaitFor(ctx, seq); err != nil {
			return m, fmt.Errorf("commit: waiting for the read model: %w", err)
		}
		return c.Model.Snapshot(), nil
	}
	return c.Model.Snapshot(), ErrTooManyConflicts
}
