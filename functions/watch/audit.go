package watch

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/certificates"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// Verification is the result of GET /1.0/trustlog/audit/verify.
type Verification = api.AuditVerification

// HistoryEntry is one event of GET /1.0/trustlog/audit/history.
type HistoryEntry = api.AuditEntry

// scanTimeout bounds a whole-stream scan.
const scanTimeout = 2 * time.Minute

// scan calls fn for every event from 1 through the newest one stored when
// it starts.
func (h *Handler) scan(ctx context.Context, to uint64, fn func(rec events.Record)) error {
	if to == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	done := false
	err := h.feed.Follow(ctx, 1, h.recheck, func(rec events.Record, _ uint64) {
		if done || rec.Seq > to {
			return
		}
		fn(rec)
		if rec.Seq >= to {
			done = true
			cancel()
		}
	}, nil)
	if done {
		return nil
	}
	if err == nil {
		err = ctx.Err()
	}
	return fmt.Errorf("watch: scanning the stream: %w", err)
}

// verify serves GET /1.0/trustlog/audit/verify: it recomputes the hash
// chain over the whole stream and reports the first break, by the rule
// the read model folds with (events.CheckLink), so that both name the
// same sequence.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	if !authn.FromContext(r.Context()).Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	last, err := h.feed.LastSeq(r.Context())
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	v := Verification{Undecodable: []uint64{}}
	var prev events.Link // the last record checked
	err = h.scan(r.Context(), last, func(rec events.Record) {
		v.Events++
		next := events.Link{Seq: rec.Seq, Hash: events.Hash(rec.Raw)}
		env, err := events.Decode(rec.Raw)
		if err != nil {
			v.Undecodable = append(v.Undecodable, rec.Seq)
		}
		if brk := events.CheckLink(prev, next, env.PrevHash, err == nil); brk != nil && v.FirstBreak == 0 {
			v.FirstBreak, v.FirstBreakReason = brk.Seq, brk.Reason
		}
		if next.Seq > prev.Seq {
			prev = next
		}
		v.LastSeq, v.LastHash = prev.Seq, prev.Hash
	})
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	v.OK = v.FirstBreak == 0 && len(v.Undecodable) == 0
	response.Sync(w, v)
}

// at parses an "at" parameter (sequence or RFC 3339 time) into the last
// sequence to fold.
func (h *Handler) at(ctx context.Context, v string) (uint64, error) {
	last, err := h.feed.LastSeq(ctx)
	if err != nil {
		return 0, err
	}
	if v == "" {
		return 0, response.BadRequest("at: a sequence number or an RFC 3339 time is required")
	}
	if seq, err := strconv.ParseUint(v, 10, 64); err == nil {
		if seq > last {
			return 0, response.BadRequest(fmt.Sprintf("at: sequence %d is past the end of the stream (the last event is %d)", seq, last))
		}
		return seq, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, response.BadRequest(fmt.Sprintf("at: %q is neither a sequence number nor an RFC 3339 time", v))
	}
	if t.After(h.now()) {
		return 0, response.BadRequest(fmt.Sprintf("at: %s is in the future", t.Format(time.RFC3339)))
	}
	seq, _, err := h.feed.SeqAt(ctx, t.Add(time.Nanosecond))
	if err != nil {
		return 0, err
	}
	return seq - 1, nil // the last event stored at or before t
}

// trustAt serves GET /1.0/trustlog/audit/trust?at=: the trust store as it
// was after the event at that sequence (or time), folded from the stream.
func (h *Handler) trustAt(w http.ResponseWriter, r *http.Request) {
	if !authn.FromContext(r.Context()).Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	to, err := h.at(r.Context(), r.FormValue("at"))
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	b := projections.NewBuilder(nil)
	if err := h.scan(r.Context(), to, func(rec events.Record) { _ = b.Apply(rec) }); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	out := []api.Certificate{}
	for _, c := range b.Model().Certificates() {
		out = append(out, certificates.ToAPI(c))
	}
	response.Sync(w, out)
}

// subjectOf describes what an event is about, for history matching: the
// fingerprint, token id and name, or identity id and name.
func subjectOf(p events.Payload) []string {
	switch e := p.(type) {
	case *events.CertificateTrusted:
		return []string{e.Fingerprint, e.Name}
	case *events.CertificateUpdated:
		return []string{e.Fingerprint, e.NewFingerprint, e.Name}
	case *events.CertificateRemoved:
		return []string{e.Fingerprint, e.Name}
	case *events.TokenIssued:
		return []string{e.ID, e.Name}
	case *events.TokenRedeemed:
		return []string{e.ID, e.Name, e.Fingerprint}
	case *events.TokenRevoked:
		return []string{e.ID, e.Name}
	case *events.TokenExpired:
		return []string{e.ID, e.Name}
	case *events.IdentityCreated:
		return []string{e.ID, e.Name}
	case *events.IdentityGranted:
		return []string{e.ID, e.Name}
	case *events.IdentityActivated:
		return []string{e.ID, e.Name, e.Fingerprint}
	case *events.IdentityRemoved:
		return []string{e.ID, e.Name}
	case *events.AccessDenied:
		return []string{e.ActorName}
	case *events.AccessDeniedSummary:
		out := make([]string, len(e.Callers))
		for i, c := range e.Callers {
			out[i] = c.ActorName
		}
		return out
	}
	return nil
}

// history serves GET /1.0/trustlog/audit/history?subject=: every event
// about a certificate (fingerprint or a prefix of at least 12 characters,
// or its name), a token (id or name) or an identity (id or name), with the
// actor, method and address of each.
func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	if !authn.FromContext(r.Context()).Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	subject := strings.TrimSpace(r.FormValue("subject"))
	if subject == "" {
		response.Fail(w, r, h.log, response.BadRequest("subject: a fingerprint, token or identity is required"))
		return
	}
	matches := func(keys []string) bool {
		for _, k := range keys {
			if k == "" {
				continue
			}
			if k == subject || (len(subject) >= 12 && strings.HasPrefix(k, subject)) {
				return true
			}
		}
		return false
	}
	last, err := h.feed.LastSeq(r.Context())
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	out := []HistoryEntry{}
	err = h.scan(r.Context(), last, func(rec events.Record) {
		env, p, err := events.DecodeRecord(rec.Raw)
		if err != nil || !matches(subjectOf(p)) {
			return
		}
		e := HistoryEntry{Seq: rec.Seq, Time: env.Time, Type: env.Type, Subject: env.Subject,
			Actor: api.AuditActor{Username: env.ActorName, Protocol: env.ActorMethod, Address: env.ActorAddress}}
		if l, ok := LifecycleOf(env, p); ok {
			e.Action = l.Action
		} else if d, ok := p.(*events.AccessDenied); ok {
			e.Action = fmt.Sprintf("denied-%s (%d× %s, %d)", d.Kind, d.Count, d.Route, d.Status)
		} else if d, ok := p.(*events.AccessDeniedSummary); ok {
			var acts []string // the subject's lines of the window
			for _, c := range d.Callers {
				if matches([]string{c.ActorName}) {
					acts = append(acts, fmt.Sprintf("denied-%s (%d× %s, %d)", c.Kind, c.Count, c.Route, c.Status))
				}
			}
			e.Action = strings.Join(acts, "; ")
		}
		out = append(out, e)
	})
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.Sync(w, out)
}

// State is GET /1.0/trustlog/audit/state: where this instance's read model
// stands, and a digest of what it holds, to compare instances (or an
// instance with a full replay).
type State struct {
	Seq         uint64    `json:"seq" yaml:"seq"`
	Hash        string    `json:"hash" yaml:"hash"`
	Digest      string    `json:"digest" yaml:"digest"`
	LastContact time.Time `json:"last_contact" yaml:"last_contact"`
}

func (h *Handler) state(w http.ResponseWriter, r *http.Request) {
	if !authn.FromContext(r.Context()).Admin() || h.model == nil {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	m := h.model.Snapshot()
	response.Sync(w, State{Seq: m.Seq(), Hash: m.Hash(), Digest: projections.Digest(m), LastContact: h.model.LastContact()})
}
