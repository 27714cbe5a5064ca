package projections_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/projections"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// eventIDs numbers the events the tests append, so that no two share an id
// (a repeated id inside the duplicate window would be dropped).
var eventIDs atomic.Uint64

// appendEvents appends ps to the store as one atomic unit after its current
// last event, built with events.New, and returns the last sequence.
func appendEvents(t *testing.T, st *natsstore.Store, ps ...events.Payload) uint64 {
	t.Helper()
	ctx := testCtx(t)
	last, err := st.LastSeq(ctx)
	if err != nil {
		t.Fatalf("LastSeq: %v", err)
	}
	prev := ""
	if last > 0 {
		recs, err := st.Read(ctx, last, last)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		prev = events.Hash(recs[0].Raw)
	}
	envs := make([]events.Envelope, len(ps))
	for i, p := range ps {
		envs[i], err = events.New(fmt.Sprintf("ev-%d", eventIDs.Add(1)), "urn:trustlog:test",
			baseTime, events.Actor{Name: "tester", Method: "system"}, p)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
	}
	seq, err := st.Append(ctx, last, prev, envs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

// runProjector runs p until the test ends; stop cancels it and returns
// Run's error.
func runProjector(t *testing.T, p *projections.Projector) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(testTimeout):
			t.Error("Run did not return after cancel")
			return nil
		}
	})
	t.Cleanup(func() { stop() })
	return stop
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// watchedFeed passes through to a real feed and reports what the projector
// does with it: each Follow call's start sequence, and each contact.
type watchedFeed struct {
	projections.Feed
	// failAfter, if positive, makes the first Follow call fail after it
	// has delivered that many records.
	failAfter int

	calls    atomic.Int32
	mu       sync.Mutex
	froms    []uint64
	followed chan struct{} // receives when a Follow call starts
	contacts chan time.Time
}

func newWatchedFeed(f projections.Feed) *watchedFeed {
	return &watchedFeed{Feed: f, followed: make(chan struct{}, 1), contacts: make(chan time.Time, 1)}
}

var errFeedBroke = errors.New("test feed broke")

// Froms returns the start sequences of the Follow calls so far.
func (w *watchedFeed) Froms() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.froms)
}

func (w *watchedFeed) Follow(ctx context.Context, from uint64, idle time.Duration, fn func(events.Record, uint64), contact func(time.Time)) error {
	fail := w.calls.Add(1) == 1 && w.failAfter > 0
	w.mu.Lock()
	w.froms = append(w.froms, from)
	w.mu.Unlock()
	select {
	case w.followed <- struct{}{}:
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	delivered := 0
	err := w.Feed.Follow(ctx, from, idle, func(rec events.Record, pending uint64) {
		if fail && delivered == w.failAfter {
			cancel()
			return
		}
		delivered++
		fn(rec, pending)
	}, func(at time.Time) {
		contact(at)
		select {
		case w.contacts <- at:
		default:
		}
	})
	if fail && delivered == w.failAfter {
		return errFeedBroke
	}
	return err
}

func waitFor(t *testing.T, p *projections.Projector, seq uint64) {
	t.Helper()
	if err := p.WaitFor(testCtx(t), seq); err != nil {
		t.Fatalf("WaitFor(%d): %v", seq, err)
	}
	if got := p.Snapshot().Seq(); got < seq {
		t.Fatalf("WaitFor(%d) returned with the snapshot at %d", seq, got)
	}
}

func TestProjectorReplayThenFollow(t *testing.T) {
	t.Parallel()
	c0, c1, c2 := certs()[0], certs()[1], certs()[2]
	st, _ := natstest.OpenStore(t)
	appendEvents(t, st, trusted(c0, "a"), trusted(c1, "b"))
	appendEvents(t, st, &events.ConfigChanged{Key: "core.https_address", Value: "127.0.0.1:8443"})

	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: testLogger(t)})
	if p.Snapshot() != projections.Empty {
		t.Error("a new projector does not start from Empty")
	}
	runProjector(t, p)
	waitFor(t, p, 3)
	m := p.Snapshot()
	if diff := cmp.Diff([]string{"a", "b"}, certNames(m)); diff != "" {
		t.Errorf("replayed trust store (-want +got):\n%s", diff)
	}
	if got := m.ConfigValue("core.https_address"); got != "127.0.0.1:8443" {
		t.Errorf("replayed config = %q", got)
	}

	// Follow: new events arrive after the replay.
	seq := appendEvents(t, st, &events.CertificateRemoved{Fingerprint: c0.FP}, trusted(c2, "c"))
	waitFor(t, p, seq)
	next := p.Snapshot()
	if diff := cmp.Diff([]string{"b", "c"}, certNames(next)); diff != "" {
		t.Errorf("followed trust store (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b"}, certNames(m)); diff != "" {
		t.Errorf("an earlier snapshot changed (-want +got):\n%s", diff)
	}

	recs, err := st.Read(testCtx(t), 1, seq)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if next.ChainBreak() != 0 {
		t.Errorf("ChainBreak() = %d on an intact stream", next.ChainBreak())
	}
	if want := events.Hash(recs[len(recs)-1].Raw); next.Hash() != want {
		t.Errorf("Hash() = %s, want the last record's %s", next.Hash(), want)
	}

	// The live model matches a fold of the stored records.
	b := projections.NewBuilder(nil)
	for _, r := range recs {
		if err := b.Apply(r); err != nil {
			t.Fatalf("Apply %d: %v", r.Seq, err)
		}
	}
	if diff := cmp.Diff(view(t, b.Model()), view(t, next)); diff != "" {
		t.Errorf("live model differs from a fold of the stream (-fold +live):\n%s", diff)
	}
}

func certNames(m *projections.Model) []string {
	var out []string
	for _, c := range m.Certificates() {
		out = append(out, c.Name)
	}
	return out
}

func TestProjectorStartsFromModel(t *testing.T) {
	t.Parallel()
	c0, c1 := certs()[0], certs()[1]
	st, _ := natstest.OpenStore(t)
	appendEvents(t, st, trusted(c0, "a"))
	recs, err := st.Read(testCtx(t), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	start, err := projections.Apply(projections.Empty, recs[0])
	if err != nil {
		t.Fatal(err)
	}
	seq := appendEvents(t, st, trusted(c1, "b"))

	feed := newWatchedFeed(st)
	p := projections.NewProjector(feed, projections.ProjectorConfig{Logger: testLogger(t), Start: start})
	runProjector(t, p)
	waitFor(t, p, seq)
	if diff := cmp.Diff([]string{"a", "b"}, certNames(p.Snapshot())); diff != "" {
		t.Errorf("trust store (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{2}, feed.Froms()); diff != "" {
		t.Errorf("projector resumed from a stored model at seq 1 followed from (-want +got):\n%s", diff)
	}
}

func TestProjectorEmptyStream(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	feed := newWatchedFeed(st)
	p := projections.NewProjector(feed, projections.ProjectorConfig{Logger: testLogger(t)})
	if !p.LastContact().IsZero() {
		t.Errorf("LastContact() = %v before Run, want zero", p.LastContact())
	}
	runProjector(t, p)
	select {
	case <-feed.followed:
	case <-time.After(testTimeout):
		t.Fatal("the projector never followed the feed")
	}
	if diff := cmp.Diff([]uint64{1}, feed.Froms()); diff != "" {
		t.Errorf("Follow start sequences (-want +got):\n%s", diff)
	}
	// Run publishes the caught-up model before it follows the feed.
	m := p.Snapshot()
	if m.Seq() != 0 || m.NumCertificates() != 0 {
		t.Errorf("snapshot of an empty stream at seq %d with %d certificates", m.Seq(), m.NumCertificates())
	}
	if p.LastContact().IsZero() {
		t.Error("LastContact() is zero after the projector read the stream")
	}
	// WaitFor(0) needs nothing: it returns even with a dead context.
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitFor(dead, 0); err != nil {
		t.Errorf("WaitFor(0) = %v, want nil at once", err)
	}
	if err := p.Sync(testCtx(t)); err != nil {
		t.Errorf("Sync on an empty stream: %v", err)
	}

	// The first event is followed.
	seq := appendEvents(t, st, &events.ConfigChanged{Key: "k", Value: "v"})
	waitFor(t, p, seq)
	if got := p.Snapshot().ConfigValue("k"); got != "v" {
		t.Errorf("ConfigValue(k) = %q, want v", got)
	}
}

func TestProjectorWaitFor(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	appendEvents(t, st, &events.ConfigChanged{Key: "a", Value: "1"})
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: testLogger(t)})
	stop := runProjector(t, p)
	waitFor(t, p, 1)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	tests := []struct {
		name    string
		ctx     context.Context
		seq     uint64
		wantErr error
	}{
		{name: "ok/already applied", ctx: testCtx(t), seq: 1},
		{name: "ok/already applied, dead context", ctx: canceled, seq: 1},
		{name: "fail/canceled context", ctx: canceled, seq: 2, wantErr: context.Canceled},
		{name: "fail/expired context", ctx: expired, seq: 2, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.WaitFor(tt.ctx, tt.seq); !errors.Is(err, tt.wantErr) {
				t.Errorf("WaitFor(%d) = %v, want %v", tt.seq, err, tt.wantErr)
			}
		})
	}

	t.Run("ok/waits for a later event", func(t *testing.T) {
		done := make(chan error, 1)
		go func() { done <- p.WaitFor(testCtx(t), 3) }()
		appendEvents(t, st, &events.ConfigChanged{Key: "b", Value: "2"})
		appendEvents(t, st, &events.ConfigChanged{Key: "c", Value: "3"})
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("WaitFor(3) = %v", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("WaitFor(3) did not return")
		}
		if got := p.Snapshot().ConfigValue("c"); got != "3" {
			t.Errorf("after WaitFor(3), ConfigValue(c) = %q, want 3", got)
		}
	})

	t.Run("fail/canceled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.WaitFor(ctx, 100) }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("WaitFor(100) = %v, want context.Canceled", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("WaitFor did not honour cancellation")
		}
	})

	t.Run("fail/projector stopped", func(t *testing.T) {
		ctx := testCtx(t)
		done := make(chan error, 1)
		go func() { done <- p.WaitFor(ctx, 100) }()
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		select {
		case err := <-done:
			if err == nil || ctx.Err() != nil {
				t.Errorf("WaitFor(100) on a stopped projector = %v, want the projector's error", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("WaitFor did not return when the projector stopped")
		}
		if err := p.WaitFor(testCtx(t), 1); err != nil {
			t.Errorf("WaitFor(1) on a stopped projector = %v, want nil (already applied)", err)
		}
	})
}

func TestProjectorSync(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: testLogger(t)})
	runProjector(t, p)
	for i := range 3 {
		seq := appendEvents(t, st, &events.ConfigChanged{Key: "k", Value: string(rune('a' + i))}, &events.ConfigChanged{Key: "n", Value: "x"})
		if err := p.Sync(testCtx(t)); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if got := p.Snapshot().Seq(); got < seq {
			t.Fatalf("after Sync the snapshot is at %d, want %d", got, seq)
		}
		if got, want := p.Snapshot().ConfigValue("k"), string(rune('a'+i)); got != want {
			t.Errorf("after Sync ConfigValue(k) = %q, want %q", got, want)
		}
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Sync(canceled); err == nil {
		t.Error("Sync with a canceled context succeeded")
	}
}

func TestProjectorLastContact(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	feed := newWatchedFeed(st)
	p := projections.NewProjector(feed, projections.ProjectorConfig{Logger: testLogger(t), Idle: 10 * time.Millisecond})
	runProjector(t, p)

	// Each contact the feed reports is visible through LastContact, and
	// later contacts move it forward.
	var prev time.Time
	for i := range 3 {
		var at time.Time
		select {
		case at = <-feed.contacts:
		case <-time.After(testTimeout):
			t.Fatalf("contact %d never came", i+1)
		}
		got := p.LastContact()
		if got.UnixNano() < at.UnixNano() {
			t.Errorf("LastContact() = %v, before the contact at %v", got, at)
		}
		if got.UnixNano() < prev.UnixNano() {
			t.Errorf("LastContact() went back from %v to %v", prev, got)
		}
		prev = got
	}

	// An event is a contact too.
	before := time.Now()
	seq := appendEvents(t, st, &events.ConfigChanged{Key: "k", Value: "v"})
	waitFor(t, p, seq)
	if got := p.LastContact(); got.UnixNano() < before.UnixNano() {
		t.Errorf("LastContact() = %v after an event appended at %v", got, before)
	}
}

func TestProjectorResumesAfterFeedFailure(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	seq := appendEvents(t, st,
		&events.ConfigChanged{Key: "a", Value: "1"},
		&events.ConfigChanged{Key: "b", Value: "2"},
		&events.ConfigChanged{Key: "c", Value: "3"},
		&events.ConfigChanged{Key: "d", Value: "4"},
	)
	feed := newWatchedFeed(st)
	feed.failAfter = 2
	p := projections.NewProjector(feed, projections.ProjectorConfig{Logger: testLogger(t)})
	runProjector(t, p)
	waitFor(t, p, seq)

	want := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
	if diff := cmp.Diff(want, p.Snapshot().Config()); diff != "" {
		t.Errorf("config after a reconnect (-want +got):\n%s", diff)
	}
	if p.Snapshot().ChainBreak() != 0 {
		t.Errorf("ChainBreak() = %d after a reconnect", p.Snapshot().ChainBreak())
	}
	if diff := cmp.Diff([]uint64{1, 3}, feed.Froms()); diff != "" {
		t.Errorf("Follow start sequences (-want +got):\n%s", diff)
	}
}

func TestProjectorSkipsBadEvents(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	bad, err := events.New("bad-1", "urn:trustlog:test", baseTime, events.Actor{}, events.ConfigChanged{Key: "x"})
	if err != nil {
		t.Fatal(err)
	}
	bad.Data = []byte(`{"key":1}`)
	unknown, err := events.New("future-1", "urn:trustlog:test", baseTime, events.Actor{}, events.ConfigChanged{Key: "y", Value: "1"})
	if err != nil {
		t.Fatal(err)
	}
	unknown.Type = "trustlog.future.thing.v9"
	if _, err := st.Append(testCtx(t), 0, "", bad, unknown); err != nil {
		t.Fatalf("Append: %v", err)
	}
	seq := appendEvents(t, st, &events.ConfigChanged{Key: "z", Value: "2"})

	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: testLogger(t)})
	runProjector(t, p)
	waitFor(t, p, seq)
	m := p.Snapshot()
	if m.Skipped() != 2 {
		t.Errorf("Skipped() = %d, want 2", m.Skipped())
	}
	if diff := cmp.Diff(map[string]string{"z": "2"}, m.Config()); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}
