package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
)

// catchUpEvents is more than the bulk catch-up's threshold and more than
// the two pull requests it keeps in flight (2 × 4096).
const catchUpEvents = 10_000

// appendMany appends n config events, ids "e<seq>", in batches of 500.
func appendMany(t *testing.T, st *natsstore.Store, n int) {
	t.Helper()
	for done := 0; done < n; {
		var envs []events.Envelope
		for i := done; i < min(done+500, n); i++ {
			envs = append(envs, configEnv(t, fmt.Sprintf("e%d", i+1), "k", fmt.Sprint(i)))
		}
		appendOK(t, st, envs...)
		done += len(envs)
	}
}

// checkDeliveries fails unless got holds sequences from..to in order, each
// once, with its own event, and pending 0 on the last.
func checkDeliveries(t *testing.T, got []delivery, from, to uint64) {
	t.Helper()
	if want := int(to - from + 1); len(got) != want {
		t.Fatalf("%d records delivered, want %d", len(got), want)
	}
	for i, d := range got {
		seq := from + uint64(i)
		if d.Seq != seq || d.ID != fmt.Sprintf("e%d", seq) {
			t.Fatalf("delivery %d is %+v, want sequence %d (e%d)", i, d, seq, seq)
		}
		if d.Pending != to-seq {
			t.Fatalf("delivery of %d says %d pending, want %d", seq, d.Pending, to-seq)
		}
	}
}

// consumers lists the stream's consumers.
func consumers(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx := testCtx(t)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	var names []string
	l := s.ConsumerNames(ctx)
	for name := range l.Name() {
		names = append(names, name)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("ConsumerNames: %v", err)
	}
	return names
}

// TestFollowCatchUp replays a backlog long enough for the bulk catch-up,
// from the start and from the middle, then follows new events: every
// record arrives once, in order, with the right pending count, and the
// catch-up consumer is gone afterwards.
func TestFollowCatchUp(t *testing.T) {
	t.Parallel()
	for _, from := range []uint64{1, 1234} {
		t.Run(fmt.Sprintf("from %d", from), func(t *testing.T) {
			t.Parallel()
			// A store each: a stopped Follow's ordered consumer may linger
			// on the server for a moment, and the count below is exact.
			st, srv := natstest.OpenStore(t)
			js, err := jetstream.New(natstest.Connect(t, srv))
			if err != nil {
				t.Fatal(err)
			}
			appendMany(t, st, catchUpEvents)
			out, _, stop := follow(t, st, from, time.Second)
			got := receive(t, out, catchUpEvents-int(from)+1)
			checkDeliveries(t, got, from, catchUpEvents)
			// Caught up: the bulk consumer is deleted, and following goes on
			// through the ordered consumer alone.
			deadline := time.Now().Add(testTimeout)
			for len(consumers(t, js, st.Stream())) != 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if names := consumers(t, js, st.Stream()); len(names) != 1 {
				t.Errorf("consumers after catching up: %v, want the ordered consumer only", names)
			}
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Follow returned %v, want context.Canceled", err)
			}
		})
	}
}

// TestFollowCatchUpInterrupted deletes the bulk consumer in the middle of
// a catch-up: Follow carries on through the ordered consumer from the
// last record delivered, losing and repeating nothing.
func TestFollowCatchUpInterrupted(t *testing.T) {
	t.Parallel()
	st, srv := natstest.OpenStore(t)
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	appendMany(t, st, catchUpEvents)
	out := make(chan delivery, catchUpEvents+10)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	deleted := false
	go st.Follow(ctx, 1, time.Second, func(rec events.Record, pending uint64) {
		env, err := events.Decode(rec.Raw)
		if err != nil {
			t.Errorf("Decode %d: %v", rec.Seq, err)
		}
		if rec.Seq == 5000 && !deleted {
			// Only the catch-up consumer exists at this point.
			for _, name := range consumers(t, js, st.Stream()) {
				if err := js.DeleteConsumer(ctx, st.Stream(), name); err != nil {
					t.Errorf("DeleteConsumer: %v", err)
				}
				deleted = true
			}
		}
		out <- delivery{Seq: rec.Seq, ID: env.ID, Pending: pending}
	}, nil)
	checkDeliveries(t, receive(t, out, catchUpEvents), 1, catchUpEvents)
	if !deleted {
		t.Error("no catch-up consumer was there to delete at sequence 5000")
	}
	// Following still works.
	appendOK(t, st, configEnv(t, fmt.Sprintf("e%d", catchUpEvents+1), "k", "last"))
	checkDeliveries(t, receive(t, out, 1), catchUpEvents+1, catchUpEvents+1)
}

// TestFollowCatchUpCancelled: cancelling in the middle of a catch-up ends
// Follow with the context's error, delivering nothing more.
func TestFollowCatchUpCancelled(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	appendMany(t, st, catchUpEvents)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var last uint64
	done := make(chan error, 1)
	go func() {
		done <- st.Follow(ctx, 1, time.Second, func(rec events.Record, _ uint64) {
			last = rec.Seq
			if rec.Seq == 3000 {
				cancel()
			}
		}, nil)
	}()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Follow did not return after cancel")
	}
	if last != 3000 {
		t.Errorf("the last record delivered is %d, want 3000 (the one that cancelled)", last)
	}
}
