package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/projections"
)

// configChain makes n chained records, each setting key k<i>.
func configChain(t *testing.T, n int) []events.Record {
	t.Helper()
	c := newChain(t)
	recs := make([]events.Record, n)
	for i := range recs {
		recs[i] = c.next(&events.ConfigChanged{Key: fmt.Sprintf("k%d", i+1), Value: "v"}, nil)
	}
	return recs
}

// breaks are the ways a stream stops being one hash chain, each made from
// an intact run of n records, with the first break the fold must report.
func breaks(t *testing.T, n int, at uint64) []struct {
	name    string
	recs    []events.Record
	wantSeq uint64
	wantWhy string
} {
	t.Helper()
	i := at - 1 // index of the record at sequence at
	forged := func() []events.Record {
		// A record written behind Trustlog's back in place of event at:
		// it claims to follow at-1, but at is stored already, so it lands
		// at the end of the stream.
		recs := configChain(t, n)
		env, err := events.New("forged", "urn:forger", baseTime, events.Actor{Name: "mallory"}, &events.ConfigChanged{Key: "k", Value: "forged"})
		if err != nil {
			t.Fatal(err)
		}
		env.PrevHash = events.Hash(recs[i-1].Raw)
		raw, _ := env.Marshal()
		return append(recs[:at], events.Record{Seq: at + 1, Raw: raw})
	}
	reordered := func() []events.Record {
		recs := configChain(t, n)
		recs[i].Raw, recs[i+1].Raw = recs[i+1].Raw, recs[i].Raw
		return recs
	}
	dropped := func() []events.Record {
		recs := configChain(t, n)
		return append(recs[:i:i], recs[i+1:]...)
	}
	duplicated := func() []events.Record {
		recs := configChain(t, n)
		other := newChain(t).at(at, &events.ConfigChanged{Key: "k", Value: "other"})
		return append(append(recs[:at:at], other), recs[at:]...)
	}
	return []struct {
		name    string
		recs    []events.Record
		wantSeq uint64
		wantWhy string
	}{
		{"forged", forged(), at + 1, fmt.Sprintf("its prevhash does not match the hash of event %d", at)},
		{"reordered", reordered(), at, fmt.Sprintf("its prevhash does not match the hash of event %d", at-1)},
		{"dropped", dropped(), at, fmt.Sprintf("sequence %d is missing: the record after %d is %d", at, at-1, at+1)},
		{"duplicated", duplicated(), at, fmt.Sprintf("sequence %d was delivered again with different content", at)},
	}
}

// TestFoldChainBreaks: each way of breaking the chain is reported at its
// first sequence, with its reason, by every way of folding: one record at
// a time, the pure Apply, and ApplyAll, whose long batches decode ahead
// in parallel. Later records still fold, and a later break does not
// replace the first.
func TestFoldChainBreaks(t *testing.T) {
	t.Parallel()
	const n, at = 300, 200
	for _, tt := range breaks(t, n, at) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A second break near the end: record n's prevhash is made up.
			recs := append([]events.Record(nil), tt.recs...)
			last := &recs[len(recs)-1]
			if env, err := events.Decode(last.Raw); err == nil && tt.name != "forged" {
				env.PrevHash = strings.Repeat("0", 64)
				last.Raw, _ = env.Marshal()
			}
			folds := map[string]func() *projections.Model{
				"Builder.Apply": func() *projections.Model {
					b := projections.NewBuilder(nil)
					for _, r := range recs {
						_ = b.Apply(r)
					}
					if seq, why := b.ChainBreak(); seq != tt.wantSeq || why != tt.wantWhy {
						t.Errorf("Builder.ChainBreak() = %d %q", seq, why)
					}
					return b.Model()
				},
				"Apply": func() *projections.Model {
					m := projections.Empty
					for _, r := range recs {
						m, _ = projections.Apply(m, r)
					}
					return m
				},
				"ApplyAll": func() *projections.Model {
					b := projections.NewBuilder(nil)
					b.ApplyAll(recs, nil)
					return b.Model()
				},
				"ApplyAll in two batches": func() *projections.Model {
					b := projections.NewBuilder(nil)
					b.ApplyAll(recs[:at-1], nil)
					b.ApplyAll(recs[at-1:], nil)
					return b.Model()
				},
			}
			for name, fold := range folds {
				m := fold()
				if m.ChainBreak() != tt.wantSeq || m.ChainBreakReason() != tt.wantWhy {
					t.Errorf("%s: ChainBreak() = %d %q, want %d %q", name, m.ChainBreak(), m.ChainBreakReason(), tt.wantSeq, tt.wantWhy)
				}
				if want := recs[len(recs)-1].Seq; m.Seq() != want {
					t.Errorf("%s: folded up to %d, want %d", name, m.Seq(), want)
				}
			}
		})
	}
}

// TestFoldChainIntact: an intact chain, replayed or resumed from any
// point, with repeats of records already folded, has no break.
func TestFoldChainIntact(t *testing.T) {
	t.Parallel()
	recs := configChain(t, 300)
	b := projections.NewBuilder(nil)
	b.ApplyAll(recs[:150], nil)
	b.ApplyAll(recs[100:], nil) // 100..150 again, byte for byte
	_ = b.Apply(recs[299])
	_ = b.Apply(recs[0])
	if seq, why := b.ChainBreak(); seq != 0 {
		t.Errorf("ChainBreak() = %d %q on an intact chain", seq, why)
	}
	resumed := projections.NewBuilder(b.Model())
	more := newChain(t)
	more.seq, more.prev = 300, events.Hash(recs[299].Raw)
	_ = resumed.Apply(more.next(&events.ConfigChanged{Key: "k", Value: "v"}, nil))
	if seq, _ := resumed.ChainBreak(); seq != 0 || resumed.Seq() != 301 {
		t.Errorf("resumed: ChainBreak() = %d at %d", seq, resumed.Seq())
	}
}

// appendRaw publishes raw on the stream behind the store's back, as
// anyone with publish rights on trustlog.> could, and returns its
// sequence.
func appendRaw(t *testing.T, js jetstream.JetStream, raw []byte) uint64 {
	t.Helper()
	ack, err := js.Publish(testCtx(t), "trustlog.config.forged", raw)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ack.Sequence
}

// lastHash returns the stored hash of the stream's last record.
func lastHash(t *testing.T, st *natsstore.Store) (uint64, string) {
	t.Helper()
	last, err := st.LastSeq(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.Read(testCtx(t), last, last)
	if err != nil {
		t.Fatal(err)
	}
	return last, events.Hash(recs[0].Raw)
}

// errorLog collects what a logger writes at Error.
type errorLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *errorLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *errorLog) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), substr)
}

// TestProjectorChainBreakWhileFollowing: a record written behind
// Trustlog's back while the projector follows the stream is found as it
// arrives; the break is logged once, at Error, and stays while the
// projector goes on folding.
func TestProjectorChainBreakWhileFollowing(t *testing.T) {
	t.Parallel()
	st, srv := natstest.OpenStore(t)
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st, &events.ConfigChanged{Key: "a", Value: "1"}, &events.ConfigChanged{Key: "b", Value: "2"})
	var logs errorLog
	p := projections.NewProjector(st, projections.ProjectorConfig{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))})
	runProjector(t, p)
	waitFor(t, p, 2)
	if m := p.Snapshot(); m.ChainBreak() != 0 {
		t.Fatalf("ChainBreak() = %d %q on an intact stream", m.ChainBreak(), m.ChainBreakReason())
	}

	// Claims to follow event 1, as if it replaced event 2.
	recs, err := st.Read(testCtx(t), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := events.New("forged", "urn:forger", baseTime, events.Actor{Name: "mallory"}, &events.ConfigChanged{Key: "b", Value: "forged"})
	env.PrevHash = events.Hash(recs[0].Raw)
	raw, _ := env.Marshal()
	forged := appendRaw(t, js, raw)
	waitFor(t, p, forged)
	m := p.Snapshot()
	if want := "its prevhash does not match the hash of event 2"; m.ChainBreak() != forged || m.ChainBreakReason() != want {
		t.Errorf("ChainBreak() = %d %q, want %d %q", m.ChainBreak(), m.ChainBreakReason(), forged, want)
	}

	// Trustlog's next write chains onto the forged record, and the break
	// stays where it was; a second break is not logged again.
	seq := appendEvents(t, st, &events.ConfigChanged{Key: "c", Value: "3"})
	garbage := appendRaw(t, js, []byte(`{"not":"an envelope"}`))
	waitFor(t, p, garbage)
	if m := p.Snapshot(); m.ChainBreak() != forged || m.ConfigValue("c") != "3" || seq != forged+1 {
		t.Errorf("after more events: ChainBreak() = %d, c = %q", m.ChainBreak(), m.ConfigValue("c"))
	}
	if n := logs.count("level=ERROR msg=\"projection: the event log is broken"); n != 1 {
		t.Errorf("the break was logged %d times at Error, want once:\n%s", n, logs.buf.String())
	}
	if n := logs.count(fmt.Sprintf("seq=%d", forged)); n != 1 {
		t.Errorf("the log does not name sequence %d once:\n%s", forged, logs.buf.String())
	}
}

// TestProjectorChainBreakAfterSnapshot: a projector resumed from a stored
// model checks that the first event after it chains onto the model's
// hash. Here the model was folded from another history (its event 2 is
// not the stream's), so event 3 breaks the chain.
func TestProjectorChainBreakAfterSnapshot(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	appendEvents(t, st, &events.ConfigChanged{Key: "a", Value: "1"}, &events.ConfigChanged{Key: "b", Value: "2"})
	seq := appendEvents(t, st, &events.ConfigChanged{Key: "c", Value: "3"})
	recs, err := st.Read(testCtx(t), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	other := newChain(t)
	other.seq, other.prev = 1, events.Hash(recs[0].Raw)
	b := projections.NewBuilder(nil)
	_ = b.Apply(recs[0])
	_ = b.Apply(other.next(&events.ConfigChanged{Key: "b", Value: "elsewhere"}, nil))

	for _, tt := range []struct {
		name    string
		start   *projections.Model
		wantSeq uint64
		wantWhy string
	}{
		{name: "ok/the stream's own model", start: must(projections.Apply(projections.Empty, recs[0])), wantSeq: 0},
		{name: "fail/a model of another history", start: b.Model(), wantSeq: 3, wantWhy: "its prevhash does not match the hash of event 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler), Start: tt.start})
			runProjector(t, p)
			waitFor(t, p, seq)
			if m := p.Snapshot(); m.ChainBreak() != tt.wantSeq || m.ChainBreakReason() != tt.wantWhy {
				t.Errorf("ChainBreak() = %d %q, want %d %q", m.ChainBreak(), m.ChainBreakReason(), tt.wantSeq, tt.wantWhy)
			}
		})
	}
}

func must(m *projections.Model, err error) *projections.Model {
	if err != nil {
		panic(err)
	}
	return m
}

// repeatingFeed is a real feed that, once, delivers the record at seq a
// second time with other content right after it: JetStream never does
// this, so the projector's handling of it is tested through its own Feed
// interface.
type repeatingFeed struct {
	projections.Feed
	seq uint64
	raw []byte
}

func (f repeatingFeed) Follow(ctx context.Context, from uint64, idle time.Duration, fn func(events.Record, uint64), contact func(time.Time)) error {
	return f.Feed.Follow(ctx, from, idle, func(rec events.Record, pending uint64) {
		fn(rec, pending)
		if rec.Seq == f.seq {
			fn(events.Record{Seq: f.seq, Raw: f.raw}, pending)
		}
	}, contact)
}

// TestProjectorChainBreakDuplicate: a sequence delivered twice with
// different content is a break at that sequence, and the second content
// is not folded.
func TestProjectorChainBreakDuplicate(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	appendEvents(t, st, &events.ConfigChanged{Key: "a", Value: "1"}, &events.ConfigChanged{Key: "b", Value: "2"})
	seq := appendEvents(t, st, &events.ConfigChanged{Key: "c", Value: "3"})
	last, hash := lastHash(t, st)
	other := newChain(t).at(2, &events.ConfigChanged{Key: "b", Value: "other"})
	p := projections.NewProjector(repeatingFeed{Feed: st, seq: 2, raw: other.Raw}, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	runProjector(t, p)
	waitFor(t, p, seq)
	m := p.Snapshot()
	if want := "sequence 2 was delivered again with different content"; m.ChainBreak() != 2 || m.ChainBreakReason() != want {
		t.Errorf("ChainBreak() = %d %q, want 2 %q", m.ChainBreak(), m.ChainBreakReason(), want)
	}
	if m.ConfigValue("b") != "2" || m.Seq() != last || m.Hash() != hash {
		t.Errorf("the repeat was folded: b = %q at %d", m.ConfigValue("b"), m.Seq())
	}
}
