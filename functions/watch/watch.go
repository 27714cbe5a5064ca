// Package watch follows the event stream for clients: LXD/Incus lifecycle
// events over the /1.0/events websocket (so `incus monitor` shows trust
// changes), Trustlog's own server-sent stream of CloudEvents for
// `trustlog monitor`, and the audit endpoints (chain verification, the
// trust store as it was, the history of one subject).
//
// Long-lived streams re-check their caller's trust as they go: when a
// client is removed or revoked, its streams end.
package watch

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/projections"
)

// Feed is the event stream as this package reads it (natsstore.Store
// implements it).
type Feed interface {
	// LastSeq returns the sequence of the newest event (0 for none).
	LastSeq(ctx context.Context) (uint64, error)
	// Follow calls fn for every event from sequence from on, in order,
	// until ctx ends; pending is how many are known to follow.
	Follow(ctx context.Context, from uint64, idle time.Duration, fn func(rec events.Record, pending uint64), contact func(time.Time)) error
	// SeqAt returns the sequence of the first event stored at or after t
	// (LastSeq()+1 if none), and the time of the first stored event.
	SeqAt(ctx context.Context, t time.Time) (uint64, time.Time, error)
}

// Model is the live read model whose state /1.0/trustlog/audit/state
// reports (a projections.Projector).
type Model interface {
	Snapshot() *projections.Model
	LastContact() time.Time
}

// Handler serves the watch routes.
type Handler struct {
	model Model
	feed  Feed
	auth  *authn.Authenticator
	now   func() time.Time
	log   *slog.Logger
	// recheck is how often a stream re-checks its caller's trust when no
	// event arrives.
	recheck time.Duration
}

// New returns a Handler over feed; auth re-checks callers of long-lived
// streams; model (optional) is the live model the state route reports.
func New(feed Feed, model Model, auth *authn.Authenticator, now func() time.Time, log *slog.Logger) *Handler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{feed: feed, model: model, auth: auth, now: now, log: log, recheck: time.Second}
}

// Routes returns the routes of the handler.
func (h *Handler) Routes() []gate.Route {
	return []gate.Route{
		{Method: "GET", Path: "/1.0/events", Handler: http.HandlerFunc(h.lifecycle)},
		{Method: "GET", Path: "/1.0/trustlog/events", Handler: http.HandlerFunc(h.monitor)},
		{Method: "GET", Path: "/1.0/trustlog/audit/verify", Admin: true, Handler: http.HandlerFunc(h.verify)},
		{Method: "GET", Path: "/1.0/trustlog/audit/history", Admin: true, Handler: http.HandlerFunc(h.history)},
		{Method: "GET", Path: "/1.0/trustlog/audit/trust", Admin: true, Handler: http.HandlerFunc(h.trustAt)},
		{Method: "GET", Path: "/1.0/trustlog/audit/state", Admin: true, Handler: http.HandlerFunc(h.state)},
	}
}

// stillTrusted reports whether the caller of r is still who it was: the
// same identity, still trusted (a removed or revoked client is not).
func (h *Handler) stillTrusted(r *http.Request, was authn.Identity) bool {
	if was.Method == authn.MethodUnix {
		return true
	}
	now := h.auth.Authenticate(r)
	return now.Trusted && !now.Ungranted() && now.Name == was.Name && now.Admin() == was.Admin()
}

// visible reports whether the caller id may see the event p: admins see
// everything; other callers only what concerns their own certificate or
// identity.
func visible(id authn.Identity, p events.Payload) bool {
	if id.Admin() {
		return true
	}
	switch e := p.(type) {
	case *events.CertificateTrusted:
		return e.Fingerprint == id.Fingerprint
	case *events.CertificateUpdated:
		return e.Fingerprint == id.Fingerprint || e.NewFingerprint == id.Fingerprint
	case *events.CertificateRemoved:
		return e.Fingerprint == id.Fingerprint
	case *events.IdentityCreated:
		return id.IdentityID != "" && e.ID == id.IdentityID
	case *events.IdentityGranted:
		return id.IdentityID != "" && e.ID == id.IdentityID
	case *events.IdentityActivated:
		return id.IdentityID != "" && e.ID == id.IdentityID
	case *events.IdentityRemoved:
		return id.IdentityID != "" && e.ID == id.IdentityID
	}
	return false
}

// guard ends a stream when its caller's trust does: check re-authenticates
// the stream's request and, once that fails, closes ended and cancels the
// stream's context.
type guard struct {
	h      *Handler
	r      *http.Request
	id     authn.Identity
	cancel context.CancelFunc
	ended  chan struct{}
	once   sync.Once
}

func (h *Handler) guard(r *http.Request, id authn.Identity, cancel context.CancelFunc) *guard {
	return &guard{h: h, r: r, id: id, cancel: cancel, ended: make(chan struct{})}
}

// check reports whether the caller is still trusted.
func (g *guard) check() bool {
	if g.h.stillTrusted(g.r, g.id) {
		return true
	}
	g.once.Do(func() { close(g.ended) })
	g.cancel()
	return false
}

// follow delivers, from sequence from on, what convert makes of each event
// (skipping those it refuses), re-checking the caller's trust on every
// event and whenever the stream is idle, until ctx ends.
func follow[T any](ctx context.Context, h *Handler, g *guard, from uint64, convert func(events.Record) (T, bool)) <-chan T {
	out := make(chan T, 64)
	go func() {
		_ = h.feed.Follow(ctx, from, h.recheck, func(rec events.Record, _ uint64) {
			if ctx.Err() != nil || !g.check() {
				return
			}
			v, ok := convert(rec)
			if !ok {
				return
			}
			select {
			case out <- v:
			case <-ctx.Done():
			}
		}, func(time.Time) { g.check() })
	}()
	return out
}
