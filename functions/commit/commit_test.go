package commit_test

// The Committer against a real stream: instances are each a connection, a
// natsstore.Store and a running projector on one embedded JetStream server,
// as separate serving hosts would be.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/projections"
)

const timeout = 20 * time.Second

var (
	at    = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	actor = events.Actor{Name: "alice", Method: "unix", Address: "127.0.0.1"}
)

// instance is one serving host on the shared stream.
type instance struct {
	store *natsstore.Store
	proj  *projections.Projector
	c     *commit.Committer
}

// cluster opens instances on one JetStream server.
type cluster struct {
	t    *testing.T
	open func() *natsstore.Store
	ids  atomic.Int64
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	srv := natstest.RunServer(t)
	return &cluster{t: t, open: func() *natsstore.Store {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		st, err := natsstore.Open(ctx, natstest.Connect(t, srv), natsstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}}
}

// instance starts a host whose committer appends through log(store), so a
// test can put a wrapper between the committer and the store.
func (cl *cluster) instance(name string, log func(*natsstore.Store) commit.Log) *instance {
	cl.t.Helper()
	st := cl.open()
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	cl.t.Cleanup(func() { cancel(); <-done })
	var l commit.Log = st
	if log != nil {
		l = log(st)
	}
	return &instance{store: st, proj: p, c: &commit.Committer{
		Model: p, Log: l, Now: func() time.Time { return at }, Source: "/trustlog/" + name,
		NewID: func() string { return fmt.Sprintf("%s-%d", name, cl.ids.Add(1)) },
	}}
}

func (in *instance) lastSeq(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	seq, err := in.store.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// envelopes reads the stream from seq from on.
func (in *instance) envelopes(t *testing.T, from uint64) []events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	recs, err := in.store.Read(ctx, from, in.lastSeq(t))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]events.Envelope, len(recs))
	for i, r := range recs {
		if out[i], err = events.Decode(r.Raw); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (in *instance) do(ctx context.Context, decide commit.Decision) (*projections.Model, error) {
	return in.c.Do(ctx, actor, decide)
}

func set(kv ...string) []events.Payload {
	var out []events.Payload
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, events.ConfigChanged{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

var errRefused = errors.New("refused by the decision")

// TestDo covers single writes: the events written, their envelopes, the
// model returned, and that a refusal or a no-op writes nothing.
func TestDo(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	in := cl.instance("a", nil)
	for _, tc := range []struct {
		name     string
		payloads []events.Payload
		err      error
		wantErr  error
		wantKeys map[string]string // config after the write
	}{
		{name: "ok/one event", payloads: set("user.a", "1"), wantKeys: map[string]string{"user.a": "1"}},
		{name: "ok/three events at once", payloads: set("user.b", "2", "user.c", "3", "user.a", ""),
			wantKeys: map[string]string{"user.b": "2", "user.c": "3"}},
		{name: "ok/no events is a no-op", wantKeys: map[string]string{"user.b": "2", "user.c": "3"}},
		{name: "fail/decision refuses", payloads: set("user.d", "4"), err: errRefused, wantErr: errRefused,
			wantKeys: map[string]string{"user.b": "2", "user.c": "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := in.lastSeq(t)
			calls := 0
			m, err := in.do(ctxT(t), func(m *projections.Model) ([]events.Payload, error) {
				calls++
				if m.Seq() != before {
					t.Errorf("decided at %d, stream at %d", m.Seq(), before)
				}
				return tc.payloads, tc.err
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Do = %v, want %v", err, tc.wantErr)
			}
			if calls != 1 {
				t.Errorf("decision ran %d times, want 1", calls)
			}
			wantSeq := before
			if tc.err == nil {
				wantSeq += uint64(len(tc.payloads))
			}
			if got := in.lastSeq(t); got != wantSeq {
				t.Errorf("stream at %d, want %d", got, wantSeq)
			}
			// The model returned (and the projector's) already holds the write.
			if m.Seq() != wantSeq || in.proj.Snapshot().Seq() < wantSeq {
				t.Errorf("model at %d (projector %d), want %d", m.Seq(), in.proj.Snapshot().Seq(), wantSeq)
			}
			if diff := cmp.Diff(tc.wantKeys, m.Config()); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if m.ChainBreak() != 0 {
				t.Errorf("hash chain broken at %d", m.ChainBreak())
			}
		})
	}
	envs := in.envelopes(t, 1)
	if len(envs) != 4 {
		t.Fatalf("%d events on the stream, want 4", len(envs))
	}
	for i, e := range envs {
		want := events.Envelope{SpecVersion: events.SpecVersion, ID: fmt.Sprintf("a-%d", i+1), Source: "/trustlog/a",
			Type: "trustlog.config.changed.v1", Time: at, DataContentType: "application/json",
			ActorName: "alice", ActorMethod: "unix", ActorAddress: "127.0.0.1"}
		got := e
		got.Subject, got.Data, got.PrevHash = "", nil, ""
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i+1, diff)
		}
	}
	if envs[0].PrevHash != "" {
		t.Errorf("first event has prevhash %q", envs[0].PrevHash)
	}
}

// interleave is a commit.Log that lets another instance write just before
// each of the first n appends it forwards, so those appends conflict.
type interleave struct {
	log   commit.Log
	n     int
	other func() error
	calls atomic.Int64
}

func (l *interleave) Append(ctx context.Context, expect uint64, prevHash string, envs ...events.Envelope) (uint64, error) {
	if int(l.calls.Add(1)) <= l.n {
		if err := l.other(); err != nil {
			return 0, err
		}
	}
	return l.log.Append(ctx, expect, prevHash, envs...)
}

// TestConflictRetry makes another instance write between a decision and
// its append: the append conflicts, the committer catches up, decides again
// on the newer model, and succeeds.
func TestConflictRetry(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	b := cl.instance("b", nil)
	var il *interleave
	a := cl.instance("a", func(st *natsstore.Store) commit.Log {
		il = &interleave{log: st, n: 1, other: func() error {
			_, err := b.do(ctxT(t), func(*projections.Model) ([]events.Payload, error) { return set("user.b", "first"), nil })
			return err
		}}
		return il
	})
	var seenB []string
	m, err := a.do(ctxT(t), func(m *projections.Model) ([]events.Payload, error) {
		seenB = append(seenB, m.ConfigValue("user.b"))
		return set("user.a", "after "+m.ConfigValue("user.b")), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"", "first"}, seenB); diff != "" {
		t.Errorf("user.b seen by each decision (-want +got):\n%s", diff)
	}
	if got := m.Config(); !cmp.Equal(got, map[string]string{"user.a": "after first", "user.b": "first"}) {
		t.Errorf("config = %v", got)
	}
	var order []string
	for _, e := range a.envelopes(t, 1) {
		order = append(order, e.Source)
	}
	if diff := cmp.Diff([]string{"/trustlog/b", "/trustlog/a"}, order); diff != "" {
		t.Errorf("writers in stream order (-want +got):\n%s", diff)
	}
	if m.ChainBreak() != 0 {
		t.Errorf("hash chain broken at %d", m.ChainBreak())
	}
}

// TestTooManyConflicts makes every attempt conflict: the committer gives
// up after MaxAttempts (8 when unset) with ErrTooManyConflicts and writes
// nothing of its own.
func TestTooManyConflicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxAttempts int
		want        int
	}{
		{name: "fail/three attempts", maxAttempts: 3, want: 3},
		{name: "fail/default attempts", maxAttempts: 0, want: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := newCluster(t)
			b := cl.instance("b", nil)
			a := cl.instance("a", func(st *natsstore.Store) commit.Log {
				n := 0
				return &interleave{log: st, n: 1 << 30, other: func() error {
					n++
					_, err := b.do(ctxT(t), func(*projections.Model) ([]events.Payload, error) {
						return set("user.b", fmt.Sprint(n)), nil
					})
					return err
				}}
			})
			a.c.MaxAttempts = tc.maxAttempts
			calls := 0
			_, err := a.do(ctxT(t), func(*projections.Model) ([]events.Payload, error) {
				calls++
				return set("user.a", "x"), nil
			})
			if !errors.Is(err, commit.ErrTooManyConflicts) {
				t.Fatalf("Do = %v, want ErrTooManyConflicts", err)
			}
			if calls != tc.want {
				t.Errorf("decision ran %d times, want %d", calls, tc.want)
			}
			for _, e := range a.envelopes(t, 1) {
				if e.Source != "/trustlog/b" {
					t.Errorf("an event of the failed write was stored: %+v", e)
				}
			}
			if got := a.lastSeq(t); got != uint64(tc.want) {
				t.Errorf("stream at %d, want %d (the other instance's writes)", got, tc.want)
			}
		})
	}
}

// TestConcurrentInstances runs writers on two instances at once: writes to
// different keys all land; writes that may happen once (claiming the same
// key) succeed exactly once, because each decides against the model at
// the sequence it appends after.
func TestConcurrentInstances(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	ins := []*instance{cl.instance("a", nil), cl.instance("b", nil)}
	const perInstance = 4
	// An attempt conflicts only when the other instance wrote since the
	// decision, so no write needs more attempts than the other's writes + 1.
	for _, in := range ins {
		in.c.MaxAttempts = 2*perInstance + 1
	}
	errTaken := errors.New("already claimed")
	var wg sync.WaitGroup
	var claimed, refused atomic.Int64
	errs := make(chan error, 2*len(ins)*perInstance)
	for i, in := range ins {
		for j := range perInstance {
			wg.Go(func() {
				_, err := in.do(ctxT(t), func(*projections.Model) ([]events.Payload, error) {
					return set(fmt.Sprintf("user.own.%d.%d", i, j), "x"), nil
				})
				if err != nil {
					errs <- err
				}
			})
			wg.Go(func() {
				_, err := in.do(ctxT(t), func(m *projections.Model) ([]events.Payload, error) {
					if m.ConfigValue("user.claim") != "" {
						return nil, errTaken
					}
					return set("user.claim", fmt.Sprintf("%d.%d", i, j)), nil
				})
				switch {
				case err == nil:
					claimed.Add(1)
				case errors.Is(err, errTaken):
					refused.Add(1)
				default:
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("write failed: %v", err)
	}
	if claimed.Load() != 1 || refused.Load() != 2*perInstance-1 {
		t.Errorf("claims: %d succeeded, %d refused; want 1 and %d", claimed.Load(), refused.Load(), 2*perInstance-1)
	}
	if got, want := ins[0].lastSeq(t), uint64(2*perInstance+1); got != want {
		t.Errorf("stream at %d, want %d", got, want)
	}
	for _, in := range ins {
		if err := in.proj.WaitFor(ctxT(t), 2*perInstance+1); err != nil {
			t.Fatal(err)
		}
		m := in.proj.Snapshot()
		if n := len(m.Config()); n != 2*perInstance+1 {
			t.Errorf("%d keys in the model, want %d", n, 2*perInstance+1)
		}
		if m.ChainBreak() != 0 {
			t.Errorf("hash chain broken at %d", m.ChainBreak())
		}
	}
}

// TestCancelled checks a write whose context has ended fails and stores
// nothing.
func TestCancelled(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	in := cl.instance("a", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := in.do(ctx, func(*projections.Model) ([]events.Payload, error) { return set("user.a", "1"), nil }); err == nil {
		t.Fatal("Do with a cancelled context succeeded")
	}
	if got := in.lastSeq(t); got != 0 {
		t.Errorf("stream at %d, want 0", got)
	}
}
