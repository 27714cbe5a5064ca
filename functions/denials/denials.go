// Package denials records refused attempts (failed token redemptions,
// changes refused for lack of access) in the event log without letting
// anyone, authenticated or not, grow it at will: attempts are counted in
// memory per kind, caller and route, and each flush appends at most one
// AccessDeniedSummary event, whose size is bounded (MaxEventBytes) whatever
// the callers send: the MaxCallers callers with the most attempts are
// listed, each field cut to MaxField bytes, and the rest are summed.
//
// The worst case an instance can be made to write is therefore one event of
// at most MaxEventBytes per flush interval: with the one-minute interval of
// trustlogd and the Lambda host, 1,440 events and at most 22.5 MiB a day.
package denials

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/projections"
)

// MaxKeys bounds the distinct kinds, callers and routes counted one by one
// in a window, and so the memory held. Once it is reached, a new key takes
// the place of the one with the fewest attempts, whose attempts are summed
// with the others.
const MaxKeys = 256

// MaxCallers bounds the callers an event lists; the attempts of the others
// are summed.
const MaxCallers = 32

// MaxField bounds, in bytes, each text field of a listed caller (name,
// method, address, route); a longer one is cut and ends in "…".
const MaxField = 128

// MaxEventBytes bounds one stored event, envelope included. The payload is
// kept within MaxEventBytes less what the envelope adds, by listing fewer
// callers if it must.
const MaxEventBytes = 16 << 10

// actor is who writes the events.
var actor = events.Actor{Name: "trustlogd", Method: "system"}

// envelopeRoom returns what the envelope adds around the data of an event
// the committer writes from source: measured on an envelope with an id of
// 64 bytes (the committer's are UUIDs, 36), a chain hash and the longest
// time, plus a margin.
func envelopeRoom(source string) int {
	env, err := events.New(strings.Repeat("0", 64), source, time.Date(2000, 12, 31, 23, 59, 59, 999999999, time.UTC), actor, events.AccessDeniedSummary{})
	if err != nil {
		return MaxEventBytes
	}
	env.Data, env.PrevHash = nil, strings.Repeat("0", 64)
	raw, err := env.Marshal()
	if err != nil {
		return MaxEventBytes
	}
	return len(raw) + 64
}

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
	k := key{kind: kind, name: cut(actor.Name), method: cut(actor.Method), address: cut(actor.Address), route: cut(route), status: status}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.counts[k]
	if !ok {
		if len(r.counts) >= MaxKeys {
			r.evict()
		}
		t = &tally{}
		r.counts[k] = t
	}
	add(t, now)
}

// evict makes room for a new key: the key with the fewest attempts (the
// least recently seen among equals) leaves the table and its attempts are
// summed in the overflow. So a caller spraying one-off identities cannot
// push a persistent one out of the table, only other one-off callers.
// It costs one pass over the MaxKeys keys, only once the table is full.
func (r *Recorder) evict() {
	var victim key
	var vt *tally
	for k, t := range r.counts {
		if vt == nil || t.count < vt.count || (t.count == vt.count && t.last.Before(vt.last)) {
			victim, vt = k, t
		}
	}
	merge(&r.overflow, *vt)
	delete(r.counts, victim)
}

func add(t *tally, now time.Time) {
	if t.count == 0 {
		t.first = now
	}
	t.count++
	t.last = now
}

// Flush appends the attempts counted since the last flush as one
// AccessDeniedSummary event and starts a new window; it returns the number
// of events written (0 or 1). On failure the counts are kept for the next
// flush.
func (r *Recorder) Flush(ctx context.Context) (int, error) {
	r.mu.Lock()
	counts, overflow := r.counts, r.overflow
	r.counts, r.overflow = map[key]*tally{}, tally{}
	r.mu.Unlock()
	if len(counts) == 0 && overflow.count == 0 {
		return 0, nil
	}
	ev := summary(counts, overflow, MaxEventBytes-envelopeRoom(r.committer.Source))
	_, err := r.committer.Do(ctx, actor, func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{ev}, nil
	})
	if err != nil {
		r.mu.Lock()
		for k, t := range counts {
			if cur, ok := r.counts[k]; ok {
				merge(cur, *t)
			} else if len(r.counts) < MaxKeys {
				r.counts[k] = t
			} else {
				merge(&r.overflow, *t)
			}
		}
		merge(&r.overflow, overflow)
		r.mu.Unlock()
		return 0, err
	}
	return 1, nil
}

// merge adds the attempts of t to into.
func merge(into *tally, t tally) {
	if t.count == 0 {
		return
	}
	if into.count == 0 || t.first.Before(into.first) {
		into.first = t.first
	}
	if t.last.After(into.last) {
		into.last = t.last
	}
	into.count += t.count
}

// summary builds the event of one window: the callers with the most
// attempts first (the earliest first among equals), at most MaxCallers of
// them and fewer if the encoded payload would exceed limit bytes; the rest
// in Others.
func summary(counts map[key]*tally, overflow tally, limit int) events.AccessDeniedSummary {
	keys := make([]key, 0, len(counts))
	all := overflow
	for k, t := range counts {
		keys = append(keys, k)
		merge(&all, *t)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if d := counts[b].count - counts[a].count; d != 0 {
			return d
		}
		return counts[a].first.Compare(counts[b].first)
	})
	ev := events.AccessDeniedSummary{First: all.first.UTC(), Last: all.last.UTC(), Count: all.count, Callers: []events.DeniedCaller{}}
	for _, k := range keys[:min(len(keys), MaxCallers)] { // the key's fields are cut already
		t := counts[k]
		ev.Callers = append(ev.Callers, events.DeniedCaller{Kind: k.kind, ActorName: k.name, ActorMethod: k.method,
			Address: k.address, Route: k.route, Status: k.status, Count: t.count, First: t.first.UTC(), Last: t.last.UTC()})
	}
	listed := func() int {
		n := 0
		for _, c := range ev.Callers {
			n += c.Count
		}
		return n
	}
	for len(ev.Callers) > 0 {
		ev.Others = ev.Count - listed()
		raw, err := json.Marshal(ev)
		if err == nil && len(raw) <= limit {
			break
		}
		ev.Callers = ev.Callers[:len(ev.Callers)-1]
	}
	ev.Others = ev.Count - listed()
	return ev
}

// cut shortens s to at most MaxField bytes, on a character boundary, ending
// it in "…" if it was longer.
func cut(s string) string {
	if len(s) <= MaxField {
		return s
	}
	n := MaxField - len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
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
