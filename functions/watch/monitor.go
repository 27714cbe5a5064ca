package watch

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/response"
)

// heartbeat is how often an idle server-sent stream writes a comment, so
// that proxies and clients see it alive.
const heartbeat = 15 * time.Second

// since parses a since parameter: "" (from now), a sequence (0 is taken
// as 1, the first event, as people expect), or an RFC 3339 time, and
// returns the first sequence to send.
func (h *Handler) since(ctx context.Context, v string) (uint64, error) {
	last, err := h.feed.LastSeq(ctx)
	if err != nil {
		return 0, err
	}
	if v == "" {
		return last + 1, nil
	}
	if seq, err := strconv.ParseUint(v, 10, 64); err == nil {
		if seq > last+1 {
			return 0, response.BadRequest(fmt.Sprintf("since: sequence %d is past the end of the stream (the last event is %d)", seq, last))
		}
		return max(seq, 1), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, response.BadRequest(fmt.Sprintf("since: %q is neither a sequence number nor an RFC 3339 time", v))
	}
	if t.After(h.now()) {
		return 0, response.BadRequest(fmt.Sprintf("since: %s is in the future", t.Format(time.RFC3339)))
	}
	seq, first, err := h.feed.SeqAt(ctx, t)
	if err != nil {
		return 0, err
	}
	if !first.IsZero() && t.Before(first) {
		return 0, response.BadRequest(fmt.Sprintf("since: %s is before the first event (%s); leave since out to start from now, or give sequence 1 to start from the beginning",
			t.Format(time.RFC3339), first.Format(time.RFC3339)))
	}
	return seq, nil
}

// typeFilter parses a comma-separated list of event types, full
// ("trustlog.certificate.trusted.v1") or short ("certificate.trusted", any
// version). Empty means every type.
func typeFilter(v string) (func(string) bool, error) {
	if v == "" {
		return func(string) bool { return true }, nil
	}
	known := events.Types()
	var want []string
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		matched := false
		for _, k := range known {
			if k == t || strings.HasPrefix(k, events.SubjectPrefix+"."+t+".v") {
				want, matched = append(want, k), true
			}
		}
		if !matched {
			return nil, response.BadRequest(fmt.Sprintf("Unknown event type %q; known types: %s", t, strings.Join(known, ", ")))
		}
	}
	return func(t string) bool { return slices.Contains(want, t) }, nil
}

// monitor serves GET /1.0/trustlog/events: the stored events (CloudEvents
// JSON, as in the stream) from since on, as server-sent events, following
// until the client leaves or its trust ends. Each event's SSE id is its
// stream sequence.
func (h *Handler) monitor(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	match, err := typeFilter(r.FormValue("type"))
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	from, err := h.since(r.Context(), r.FormValue("since"))
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	g := h.guard(r, id, cancel)
	// Each event becomes its SSE frame: id is the stream sequence.
	out := follow(ctx, h, g, from, func(rec events.Record) (string, bool) {
		env, p, err := events.DecodeRecord(rec.Raw)
		if env.Type == "" {
			// A stored record that does not decode is reported to admins, not hidden.
			return fmt.Sprintf("id: %d\nevent: trustlog.error\ndata: {\"error\":\"event %d does not decode\"}\n\n", rec.Seq, rec.Seq), id.Admin()
		}
		if !match(env.Type) {
			return "", false
		}
		// A payload that does not decode is shown to admins only.
		if err == nil && !visible(id, p) || err != nil && !id.Admin() {
			return "", false
		}
		return fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", rec.Seq, env.Type, rec.Raw), true
	})
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	recheck := time.NewTicker(h.recheck)
	defer recheck.Stop()
	for {
		select {
		case frame := <-out:
			fmt.Fprint(w, frame)
			if err := rc.Flush(); err != nil {
				return
			}
		case <-beat.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			if err := rc.Flush(); err != nil {
				return
			}
		case <-recheck.C:
			g.check()
		case <-ctx.Done():
			// Ending trust also cancels ctx: say why, whichever the select saw first.
			select {
			case <-g.ended:
				fmt.Fprint(w, "event: trustlog.end\ndata: {\"reason\":\"trust ended\"}\n\n")
				_ = rc.Flush()
			default:
			}
			return
		}
	}
}
