package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
)

// testTimeout bounds every wait on the embedded server.
const testTimeout = 10 * time.Second

var testTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// configEnv returns an envelope setting config key to value, with event id id.
func configEnv(t *testing.T, id, key, value string) events.Envelope {
	t.Helper()
	env, err := events.New(id, "urn:trustlog:test", testTime, events.Actor{Name: "tester", Method: "system"},
		events.ConfigChanged{Key: key, Value: value})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return env
}

// streamInfo reads the stream's current info from the server.
func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	ctx := testCtx(t)
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	return info
}

func lastSeq(t *testing.T, st *natsstore.Store) uint64 {
	t.Helper()
	seq, err := st.LastSeq(testCtx(t))
	if err != nil {
		t.Fatalf("LastSeq: %v", err)
	}
	return seq
}

// appendOK appends envs expecting the current last sequence and hash,
// and returns the records read back.
func appendOK(t *testing.T, st *natsstore.Store, envs ...events.Envelope) []events.Record {
	t.Helper()
	ctx := testCtx(t)
	last := lastSeq(t, st)
	prev := ""
	if last > 0 {
		recs, err := st.Read(ctx, last, last)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		prev = events.Hash(recs[0].Raw)
	}
	seq, err := st.Append(ctx, last, prev, envs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if want := last + uint64(len(envs)); seq != want {
		t.Fatalf("Append returned seq %d, want %d", seq, want)
	}
	recs, err := st.Read(ctx, last+1, seq)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return recs
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     natsstore.Config
		wantErr bool
	}{
		{name: "ok/zero", cfg: natsstore.Config{}},
		{name: "ok/R3", cfg: natsstore.Config{Stream: "X", Replicas: 3, Duplicates: time.Minute}},
		{name: "ok/R5", cfg: natsstore.Config{Replicas: 5}},
		{name: "fail/negative replicas", cfg: natsstore.Config{Replicas: -1}, wantErr: true},
		{name: "fail/too many replicas", cfg: natsstore.Config{Replicas: 6}, wantErr: true},
		{name: "fail/negative duplicate window", cfg: natsstore.Config{Duplicates: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      natsstore.Config
		wantName string
		wantDups time.Duration
		wantErr  bool
	}{
		{name: "ok/defaults", cfg: natsstore.Config{}, wantName: "TRUSTLOG", wantDups: 2 * time.Minute},
		{name: "ok/custom", cfg: natsstore.Config{Stream: "TL2", Duplicates: 30 * time.Second}, wantName: "TL2", wantDups: 30 * time.Second},
		{name: "fail/invalid config", cfg: natsstore.Config{Replicas: 9}, wantErr: true},
		{name: "fail/R3 on a single server", cfg: natsstore.Config{Replicas: 3}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := natstest.RunServer(t)
			nc := natstest.Connect(t, s)
			st, err := natsstore.Open(testCtx(t), nc, tt.cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Open succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if st.Stream() != tt.wantName {
				t.Errorf("Stream() = %q, want %q", st.Stream(), tt.wantName)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			cfg := streamInfo(t, js, tt.wantName).Config
			type view struct {
				Subjects                 []string
				Storage                  jetstream.StorageType
				Retention                jetstream.RetentionPolicy
				Replicas                 int
				Duplicates               time.Duration
				DenyDelete, DenyPurge    bool
				AllowAtomic, AllowDirect bool
				AllowRollup              bool
			}
			got := view{cfg.Subjects, cfg.Storage, cfg.Retention, cfg.Replicas, cfg.Duplicates,
				cfg.DenyDelete, cfg.DenyPurge, cfg.AllowAtomicPublish, cfg.AllowDirect, cfg.AllowRollup}
			want := view{
				Subjects:    []string{"trustlog.>"},
				Storage:     jetstream.FileStorage,
				Retention:   jetstream.LimitsPolicy,
				Replicas:    1,
				Duplicates:  tt.wantDups,
				DenyDelete:  true,
				DenyPurge:   true,
				AllowAtomic: true,
				AllowDirect: true,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("stream config mismatch (-want +got):\n%s", diff)
			}
			if n := lastSeq(t, st); n != 0 {
				t.Errorf("LastSeq on a new stream = %d, want 0", n)
			}
		})
	}
}

func TestOpenExisting(t *testing.T) {
	t.Parallel()
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	ctx := testCtx(t)
	st, err := natsstore.Open(ctx, nc, natsstore.Config{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	appendOK(t, st, configEnv(t, "e1", "k", "v"))

	again, err := natsstore.Open(ctx, natstest.Connect(t, s), natsstore.Config{Duplicates: time.Minute})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if n := lastSeq(t, again); n != 1 {
		t.Errorf("LastSeq after reopening = %d, want 1 (events kept)", n)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if got := streamInfo(t, js, natsstore.DefaultStream).Config.Duplicates; got != time.Minute {
		t.Errorf("Duplicates after reopening = %v, want the updated 1m", got)
	}
}

func TestStreamRefusesDeleteAndPurge(t *testing.T) {
	t.Parallel()
	st, s := natstest.OpenStore(t)
	appendOK(t, st, configEnv(t, "e1", "a", "1"), configEnv(t, "e2", "b", "2"))
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	stream, err := js.Stream(ctx, st.Stream())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
	}{
		{name: "fail/delete message", op: func() error { return stream.DeleteMsg(ctx, 1) }},
		{name: "fail/secure delete message", op: func() error { return stream.SecureDeleteMsg(ctx, 2) }},
		{name: "fail/purge stream", op: func() error { return stream.Purge(ctx) }},
		{name: "fail/purge subject", op: func() error {
			return stream.Purge(ctx, jetstream.WithPurgeSubject("trustlog.config.a"))
		}},
		{name: "fail/purge keeping none", op: func() error { return stream.Purge(ctx, jetstream.WithPurgeKeep(0)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); err == nil {
				t.Fatal("the stream allowed it")
			}
		})
	}
	info := streamInfo(t, js, st.Stream())
	if info.State.Msgs != 2 || info.State.FirstSeq != 1 || info.State.LastSeq != 2 {
		t.Errorf("stream state = %d msgs [%d, %d], want 2 msgs [1, 2]", info.State.Msgs, info.State.FirstSeq, info.State.LastSeq)
	}
}

func TestAppendSingle(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	ctx := testCtx(t)

	seq, err := st.Append(ctx, 0, "", configEnv(t, "e1", "a", "1"))
	if err != nil || seq != 1 {
		t.Fatalf("first Append = %d, %v; want 1, nil", seq, err)
	}
	recs, err := st.Read(ctx, 1, 1)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	h1 := events.Hash(recs[0].Raw)
	seq, err = st.Append(ctx, 1, h1, configEnv(t, "e2", "b", "2"))
	if err != nil || seq != 2 {
		t.Fatalf("second Append = %d, %v; want 2, nil", seq, err)
	}
	recs, err = st.Read(ctx, 1, 2)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	var got []string
	for _, r := range recs {
		env, err := events.Decode(r.Raw)
		if err != nil {
			t.Fatalf("Decode %d: %v", r.Seq, err)
		}
		got = append(got, fmt.Sprintf("%d %s %q", r.Seq, env.ID, env.PrevHash))
	}
	want := []string{`1 e1 ""`, fmt.Sprintf("2 e2 %q", h1)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
}

func TestAppendEmpty(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	seq, err := st.Append(testCtx(t), 0, "")
	if err != nil || seq != 0 {
		t.Errorf("Append() with no events = %d, %v; want 0, nil", seq, err)
	}
}

func TestAppendWithoutSubject(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	env := configEnv(t, "e1", "a", "1")
	env.Subject = ""
	if _, err := st.Append(testCtx(t), 0, "", env); err == nil {
		t.Error("Append of an event without subject succeeded")
	}
	if n := lastSeq(t, st); n != 0 {
		t.Errorf("LastSeq = %d, want 0", n)
	}
}

func TestAppendConflict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		expect uint64
		batch  int
	}{
		{name: "fail/single behind", expect: 1},
		{name: "fail/single at zero", expect: 0},
		{name: "fail/single ahead", expect: 7},
		{name: "fail/batch behind", expect: 1, batch: 3},
		{name: "fail/batch at zero", expect: 0, batch: 2},
		{name: "fail/batch ahead", expect: 7, batch: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, _ := natstest.OpenStore(t)
			appendOK(t, st, configEnv(t, "e1", "a", "1"), configEnv(t, "e2", "b", "2"))

			n := max(tt.batch, 1)
			envs := make([]events.Envelope, n)
			for i := range envs {
				envs[i] = configEnv(t, fmt.Sprintf("late-%d", i), "c", fmt.Sprint(i))
			}
			seq, err := st.Append(testCtx(t), tt.expect, "stale", envs...)
			if !errors.Is(err, events.ErrConflict) {
				t.Fatalf("Append = %d, %v; want an error wrapping ErrConflict", seq, err)
			}
			if n := lastSeq(t, st); n != 2 {
				t.Errorf("LastSeq after a refused append = %d, want 2", n)
			}

			// Catching up and retrying the same events succeeds: the
			// refused append left nothing behind on the server.
			recs, err := st.Read(testCtx(t), 2, 2)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			seq, err = st.Append(testCtx(t), 2, events.Hash(recs[0].Raw), envs...)
			if err != nil || seq != uint64(2+n) {
				t.Errorf("retry at the current sequence = %d, %v; want %d, nil", seq, err, 2+n)
			}
		})
	}
}

func TestAppendConcurrent(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	appendOK(t, st, configEnv(t, "e0", "a", "0"))
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			envs := []events.Envelope{configEnv(t, fmt.Sprintf("w%d", i), "a", fmt.Sprint(i))}
			if i%2 == 1 {
				envs = append(envs, configEnv(t, fmt.Sprintf("w%d-b", i), "b", fmt.Sprint(i)))
			}
			_, errs[i] = st.Append(testCtx(t), 1, "", envs...)
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, events.ErrConflict):
			t.Errorf("writer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers appended at the same expected sequence, want exactly 1", won)
	}
}

func TestAppendBatch(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	ctx := testCtx(t)
	first := appendOK(t, st, configEnv(t, "e1", "a", "1"))
	prevHash := events.Hash(first[0].Raw)

	envs := []events.Envelope{
		configEnv(t, "b1", "x", "1"),
		configEnv(t, "b2", "y", "2"),
		configEnv(t, "b3", "z", "3"),
	}
	seq, err := st.Append(ctx, 1, prevHash, envs...)
	if err != nil {
		t.Fatalf("Append batch: %v", err)
	}
	if seq != 4 {
		t.Fatalf("Append batch returned seq %d, want 4", seq)
	}
	recs, err := st.Read(ctx, 2, 4)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := prevHash
	for i, r := range recs {
		if r.Seq != uint64(i+2) {
			t.Errorf("record %d has seq %d, want %d", i, r.Seq, i+2)
		}
		env, err := events.Decode(r.Raw)
		if err != nil {
			t.Fatalf("Decode %d: %v", r.Seq, err)
		}
		if env.ID != envs[i].ID {
			t.Errorf("seq %d holds event %s, want %s", r.Seq, env.ID, envs[i].ID)
		}
		if env.PrevHash != want {
			t.Errorf("seq %d PrevHash = %s, want %s", r.Seq, env.PrevHash, want)
		}
		want = events.Hash(r.Raw)
	}
}

func TestAppendDuplicate(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	ctx := testCtx(t)
	recs := appendOK(t, st, configEnv(t, "dup", "a", "1"))

	// A retry of the same event at the current sequence is acknowledged
	// with the original sequence and not stored again.
	seq, err := st.Append(ctx, 1, events.Hash(recs[0].Raw), configEnv(t, "dup", "a", "1"))
	if err != nil || seq != 1 {
		t.Errorf("repeated Append = %d, %v; want 1, nil", seq, err)
	}
	if n := lastSeq(t, st); n != 1 {
		t.Errorf("LastSeq after a duplicate = %d, want 1", n)
	}

	tests := []struct {
		name string
		envs []events.Envelope
	}{
		{name: "fail/batch repeats a stored id", envs: []events.Envelope{configEnv(t, "new-1", "b", "1"), configEnv(t, "dup", "a", "1")}},
		{name: "fail/batch repeats its own id", envs: []events.Envelope{configEnv(t, "twice", "b", "1"), configEnv(t, "twice", "b", "2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.Append(ctx, 1, events.Hash(recs[0].Raw), tt.envs...); err == nil {
				t.Error("Append succeeded")
			}
			if n := lastSeq(t, st); n != 1 {
				t.Errorf("LastSeq = %d, want 1 (nothing written)", n)
			}
		})
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	stored := appendOK(t, st, configEnv(t, "e1", "a", "1"), configEnv(t, "e2", "b", "2"), configEnv(t, "e3", "c", "3"))
	tests := []struct {
		name     string
		from, to uint64
		want     []events.Record
		wantErr  bool
	}{
		{name: "ok/all", from: 1, to: 3, want: stored},
		{name: "ok/from zero", from: 0, to: 2, want: stored[:2]},
		{name: "ok/one", from: 2, to: 2, want: stored[1:2]},
		{name: "ok/empty range", from: 3, to: 2, want: nil},
		{name: "fail/past the end", from: 3, to: 4, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := st.Read(testCtx(t), tt.from, tt.to)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Read succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Read mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

type delivery struct {
	Seq     uint64
	ID      string
	Pending uint64
}

// follow runs st.Follow from from in the background and returns its
// deliveries, its contact times and a function that stops it and returns
// Follow's error.
func follow(t *testing.T, st *natsstore.Store, from uint64, idle time.Duration) (<-chan delivery, <-chan time.Time, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan delivery, 64)
	contact := make(chan time.Time, 64)
	done := make(chan error, 1)
	go func() {
		done <- st.Follow(ctx, from, idle, func(rec events.Record, pending uint64) {
			env, err := events.Decode(rec.Raw)
			if err != nil {
				t.Errorf("Decode %d: %v", rec.Seq, err)
			}
			out <- delivery{Seq: rec.Seq, ID: env.ID, Pending: pending}
		}, func(at time.Time) {
			select {
			case contact <- at:
			default:
			}
		})
	}()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(testTimeout):
			t.Error("Follow did not return after cancel")
			return nil
		}
	})
	t.Cleanup(func() { stop() })
	return out, contact, stop
}

func receive(t *testing.T, ch <-chan delivery, n int) []delivery {
	t.Helper()
	var got []delivery
	timeout := time.After(testTimeout)
	for len(got) < n {
		select {
		case d := <-ch:
			got = append(got, d)
		case <-timeout:
			t.Fatalf("received %d of %d records: %v", len(got), n, got)
		}
	}
	return got
}

func TestFollow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		from uint64
		want []delivery
	}{
		{name: "ok/from the start", from: 1, want: []delivery{{1, "e1", 2}, {2, "e2", 1}, {3, "e3", 0}}},
		{name: "ok/from zero", from: 0, want: []delivery{{1, "e1", 2}, {2, "e2", 1}, {3, "e3", 0}}},
		{name: "ok/from the middle", from: 2, want: []delivery{{2, "e2", 1}, {3, "e3", 0}}},
		{name: "ok/from the end", from: 4, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, _ := natstest.OpenStore(t)
			appendOK(t, st, configEnv(t, "e1", "a", "1"), configEnv(t, "e2", "b", "2"), configEnv(t, "e3", "c", "3"))
			start := time.Now()
			out, contact, stop := follow(t, st, tt.from, time.Second)

			if diff := cmp.Diff(tt.want, receive(t, out, len(tt.want))); diff != "" {
				t.Errorf("replayed records (-want +got):\n%s", diff)
			}
			// Follow keeps following: a new event arrives with nothing pending.
			appendOK(t, st, configEnv(t, "e4", "d", "4"))
			if diff := cmp.Diff([]delivery{{4, "e4", 0}}, receive(t, out, 1)); diff != "" {
				t.Errorf("followed record (-want +got):\n%s", diff)
			}
			select {
			case at := <-contact:
				if at.Before(start) {
					t.Errorf("contact at %v, before Follow started at %v", at, start)
				}
			case <-time.After(testTimeout):
				t.Error("contact was never called")
			}
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Follow returned %v, want context.Canceled", err)
			}
		})
	}
}

func TestFollowIdleContact(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	_, contact, stop := follow(t, st, 1, 20*time.Millisecond)
	// On an empty stream no record arrives; contact is still called at
	// every idle interval, after checking the stream is reachable.
	for i := range 3 {
		select {
		case <-contact:
		case <-time.After(testTimeout):
			t.Fatalf("contact %d never came on an idle stream", i+1)
		}
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow returned %v, want context.Canceled", err)
	}
}
