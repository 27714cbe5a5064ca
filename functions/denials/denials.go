// Package denials records refused attempts (failed token redemptions,
// changes refused for lack of access) in the event log without letting a
// flood of them fill it: attempts are counted in memory per kind, caller
// and route, and each flush appends one AccessDenied event per key with
// its count, at most MaxKeys of them plus one overflow event.
package denials

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/projections"
)

// MaxKeys bounds the keys one flush records one by one; the rest are
// summed into one overflow event. It also bounds the memory held.
const MaxKeys = 256

type key struct {
	kind, name, method, address, route string
	status                             int
}

type tally struct {
	count       int
	first, last time.Time
}

// Recorder counts refused attempts and flushes them to the log. It is safe
// for concurrent use and never blocks a request on the log.
type Recorder struct {
	committer *commit.Committer
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	counts   map[key]*tally
	overflow tally
}

// New returns a Recorder appending through c.
func New(c *commit.Committer, now func() time.Time, log *slog.Logger) *Recorder {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{committer: c, now: now, log: log, counts: map[key]*tally{}}
}

// Denied implements gate.Denials: it counts a refused request if it is
// one worth auditing: a failed redemption (an untrusted POST of a trust
// token), or a change (PUT, PATCH, POST, DELETE) refused with 401 or 403.
func (r *Recorder) Denied(id authn.Identity, req *http.Request, route string, status int) {
	if status != http.StatusForbidden && status != http.StatusUnauthorized {
		return
	}
	kind := ""
	switch {
	case req.Method == http.MethodPost && !id.Trusted &&
		(strings.HasSuffix(route, " /1.0/certificates") || strings.HasSuffix(route, " /1.0/auth/identities/tls")):
		kind = events.DeniedRedemption
	case slices.Contains([]string{http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodDelete}, req.Method):
		kind = events.DeniedAdmin
	default:
		return
	}
	actor := id.Actor()
	k := key{kind: kind, name: actor.Name, method: actor.Method, address: actor.Address, route: route, status: status}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.counts[k]
	if !ok {
		if len(r.counts) >= MaxKeys {
			add(&r.overflow, now)
			return
		}
		t = &tally{}
		r.counts[k] = t
	}
	add(t, now)
}

func add(t *tally, now time.Time) {
	if t.count == 0 {
		t.first = now
	}
	t.count++
	t.last = now
}

// Flush appends the counted attempts (one atomic write) and starts a new
// window. On failure the counts are kept for the next flush.
func (r *Recorder) Flush(ctx context.Context) (int, error) {
	r.mu.Lock()
	counts, overflow := r.counts, r.overflow
	r.counts, r.overflow = map[key]*tally{}, tally{}
	r.mu.Unlock()
	if len(counts) == 0 && overflow.count == 0 {
		return 0, nil
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return counts[a].first.Compare(counts[b].first) })
	var out []events.Payload
	for _, k := range keys {
		t := counts[k]
		out = append(out, events.AccessDenied{Kind: k.kind, ActorName: k.name, ActorMethod: k.method, Address: k.address,
			Route: k.route, Status: k.status, Count: t.count, First: t.first.UTC(), Last: t.last.UTC()})
	}
	if overflow.count > 0 {
		out = append(out, events.AccessDenied{Kind: events.DeniedOverflow, Count: overflow.count, First: overflow.first.UTC(), Last: overflow.last.UTC()})
	}
	_, err := r.committer.Do(ctx, events.Actor{Name: "trustlogd", Method: "system"}, func(*projections.Model) ([]events.Payload, error) {
		return out, nil
	})
	if err != nil {
		r.mu.Lock()
		for k, t := range counts {
			if cur, ok := r.counts[k]; ok {
				cur.count += t.count
				cur.first = t.first
			} else if len(r.counts) < MaxKeys {
				r.counts[k] = t
			}
		}
		r.mu.Unlock()
		return 0, err
	}
	return len(out), nil
}

// Run flushes every interval until ctx ends, and once more at the end.
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = r.Flush(fctx)
			cancel()
			return
		case <-tick.C:
			if _, err := r.Flush(ctx); err != nil {
				r.log.Warn("refused attempts not recorded yet", "err", err)
			}
		}
	}
}
