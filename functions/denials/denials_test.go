package denials_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/denials"
	"github.com/trustlog/trustlog/projections"
)

// newRecorder returns a Recorder on a fresh JetStream, and the store.
func newRecorder(t *testing.T) (*denials.Recorder, *natsstore.Store) {
	t.Helper()
	st, _ := natstest.OpenStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	proj := projections.NewProjector(st, projections.ProjectorConfig{})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = proj.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	if err := proj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	c := &commit.Committer{Model: proj, Log: st, Now: time.Now, NewID: func() string { n++; return fmt.Sprint("id-", n) },
		Source: "/trustlog/" + strings.Repeat("h", 253)}
	return denials.New(c, nil, nil), st
}

// flushOne flushes r, checks that exactly one event was stored, no larger
// than denials.MaxEventBytes, and returns it.
func flushOne(t *testing.T, r *denials.Recorder, st *natsstore.Store) *events.AccessDeniedSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before, err := st.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wrote, err := r.Flush(ctx)
	if err != nil || wrote != 1 {
		t.Fatalf("Flush = %d, %v; want 1", wrote, err)
	}
	last, err := st.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.Read(ctx, before+1, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("one flush stored %d events", len(recs))
	}
	if len(recs[0].Raw) > denials.MaxEventBytes {
		t.Errorf("event of %d bytes, over the %d cap", len(recs[0].Raw), denials.MaxEventBytes)
	}
	_, p, err := events.DecodeRecord(recs[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := p.(*events.AccessDeniedSummary)
	if !ok {
		t.Fatalf("stored %T", p)
	}
	listed := 0
	for _, c := range d.Callers {
		listed += c.Count
	}
	if listed+d.Others != d.Count || len(d.Callers) > denials.MaxCallers {
		t.Errorf("count %d != %d listed (%d callers) + %d others", d.Count, listed, len(d.Callers), d.Others)
	}
	t.Logf("one event of %d bytes: %d attempts, %d callers listed, %d others", len(recs[0].Raw), d.Count, len(d.Callers), d.Others)
	return d
}

// TestFlood: more callers than MaxKeys make one event per flush, listing
// the callers with the most attempts first and summing the rest; reads
// and successful requests are not counted.
func TestFlood(t *testing.T) {
	t.Parallel()
	r, st := newRecorder(t)
	post := httptest.NewRequest("POST", "/1.0/certificates", nil)
	get := httptest.NewRequest("GET", "/1.0/certificates", nil)
	patch := httptest.NewRequest("PATCH", "/1.0", nil)
	for i := range denials.MaxKeys + 40 {
		id := authn.Identity{Fingerprint: fmt.Sprintf("fp-%d", i), Address: "192.0.2.1"}
		r.Denied(id, post, "POST /1.0/certificates", 403)
		r.Denied(id, post, "POST /1.0/certificates", 403)
		r.Denied(id, get, "GET /1.0/certificates", 403)   // a read: not audited
		r.Denied(id, post, "POST /1.0/certificates", 400) // not a refusal
	}
	loud := authn.Identity{Fingerprint: "loud", Address: "198.51.100.9"}
	for range 50 {
		r.Denied(loud, patch, "PATCH /1.0", 403)
	}
	d := flushOne(t, r, st)
	if want := 2*(denials.MaxKeys+40) + 50; d.Count != want {
		t.Errorf("Count %d, want %d", d.Count, want)
	}
	if len(d.Callers) != denials.MaxCallers {
		t.Errorf("%d callers listed, want %d", len(d.Callers), denials.MaxCallers)
	}
	if c := d.Callers[0]; c.ActorName != "loud" || c.Count != 50 || c.Kind != events.DeniedAdmin || c.Route != "PATCH /1.0" {
		t.Errorf("first caller %+v, want the loudest", c)
	}
	for _, c := range d.Callers[1:] {
		if c.Kind != events.DeniedRedemption || c.Count != 2 || c.ActorMethod != "untrusted" {
			t.Errorf("caller %+v", c)
		}
	}
	if n, err := r.Flush(context.Background()); n != 0 || err != nil {
		t.Errorf("empty Flush = %d, %v", n, err)
	}
}

// TestEventSizeBounded: whatever the callers' names, addresses and routes
// hold (long, multi-byte, characters JSON escapes), one flush writes one
// event within MaxEventBytes; long fields are cut on a character boundary.
func TestEventSizeBounded(t *testing.T) {
	t.Parallel()
	r, st := newRecorder(t)
	patch := httptest.NewRequest("PATCH", "/1.0", nil)
	long := []string{strings.Repeat("\x01<>&\"", 4096), strings.Repeat("é", 5000), strings.Repeat("\u2028", 3000)}
	for i := range denials.MaxKeys {
		id := authn.Identity{Trusted: true, Name: fmt.Sprint(i) + long[i%3], Method: long[(i+1)%3], Address: long[(i+2)%3]}
		for range 1 + i%7 {
			r.Denied(id, patch, "PATCH /1.0"+long[i%3], 403)
		}
	}
	d := flushOne(t, r, st)
	if len(d.Callers) == 0 {
		t.Fatal("no caller listed")
	}
	for _, c := range d.Callers {
		for _, f := range []string{c.ActorName, c.ActorMethod, c.Address, c.Route} {
			if len(f) > denials.MaxField || !utf8.ValidString(f) || !strings.HasSuffix(f, "…") {
				t.Fatalf("field of %d bytes not cut to %d: %.40q", len(f), denials.MaxField, f)
			}
		}
	}
}
