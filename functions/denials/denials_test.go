package denials_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/denials"
	"github.com/trustlog/trustlog/projections"
)

// TestFlood: more callers than MaxKeys are summed into one overflow event,
// so one flush writes at most MaxKeys+1 events whatever the flood; reads
// and successful requests are not counted.
func TestFlood(t *testing.T) {
	t.Parallel()
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
	c := &commit.Committer{Model: proj, Log: st, Now: time.Now, NewID: func() string { n++; return fmt.Sprint("id-", n) }, Source: "/test"}
	r := denials.New(c, nil, nil)
	post := httptest.NewRequest("POST", "/1.0/certificates", nil)
	get := httptest.NewRequest("GET", "/1.0/certificates", nil)
	for i := range denials.MaxKeys + 40 {
		id := authn.Identity{Fingerprint: fmt.Sprintf("fp-%d", i), Address: "192.0.2.1"}
		r.Denied(id, post, "POST /1.0/certificates", 403)
		r.Denied(id, post, "POST /1.0/certificates", 403)
		r.Denied(id, get, "GET /1.0/certificates", 403)   // a read: not audited
		r.Denied(id, post, "POST /1.0/certificates", 400) // not a refusal
	}
	wrote, err := r.Flush(ctx)
	if err != nil || wrote != denials.MaxKeys+1 {
		t.Fatalf("Flush = %d, %v; want %d", wrote, err, denials.MaxKeys+1)
	}
	recs, err := st.Read(ctx, 1, uint64(wrote))
	if err != nil {
		t.Fatal(err)
	}
	total, overflow := 0, 0
	for _, rec := range recs {
		env, _ := events.Decode(rec.Raw)
		p, _ := env.Payload()
		d := p.(*events.AccessDenied)
		total += d.Count
		if d.Kind == events.DeniedOverflow {
			overflow = d.Count
		} else if d.Kind != events.DeniedRedemption || d.Count != 2 {
			t.Errorf("event %+v", d)
		}
	}
	if total != 2*(denials.MaxKeys+40) || overflow != 80 {
		t.Errorf("total %d overflow %d, want %d and 80", total, overflow, 2*(denials.MaxKeys+40))
	}
}
