package history_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/local/faults/history"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)

func sample() *history.History {
	return &history.History{
		Ops: []history.Op{
			{ID: 1, Client: 0, Node: "n1", Kind: history.KindAdd, Key: "aa", Invoke: t0, Complete: t0.Add(3 * time.Millisecond), Status: 201, Result: history.ResultOK},
			{ID: 2, Client: 1, Node: "n2", Kind: history.KindRead, Key: "aa", Value: history.ValueTrusted, Invoke: t0.Add(time.Millisecond), Complete: t0.Add(2 * time.Millisecond), Status: 200, Result: history.ResultOK},
			{ID: 3, Client: 2, Node: "n3", Kind: history.KindIssue, Invoke: t0, Complete: t0.Add(time.Second), Result: history.ResultUnknown, Error: "context deadline exceeded"},
		},
		Events: []history.Event{
			{Time: t0.Add(time.Second), Kind: history.EventFaultStart, Fault: history.FaultPartition, Nodes: []string{"n3"}, Detail: "n3 | n1 n2"},
			{Time: t0.Add(2 * time.Second), Kind: history.EventHeal},
		},
		Finals: []history.Final{
			{Node: "n1", Seq: 9, Digest: "d1", Certificates: []string{"aa"}, Redeemed: map[string]string{}},
			{Node: "n2", Seq: 9, Digest: "d1", Certificates: []string{"aa"}},
			{Node: "n3", Err: "503 Service unavailable"},
		},
	}
}

// write writes h with w, ops and events interleaved as a harness would.
func write(t *testing.T, w *history.Writer, h *history.History) {
	t.Helper()
	for _, op := range h.Ops {
		if err := w.Op(op); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range h.Events {
		if err := w.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range h.Finals {
		if err := w.Final(f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	want := sample()
	write(t, history.NewWriter(&buf), want)
	got, err := history.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history changed on its way through a file (-want +got):\n%s", diff)
	}
	// Unobservable redemptions stay nil, observed none stay empty.
	if got.Finals[0].Redeemed == nil || got.Finals[1].Redeemed != nil {
		t.Errorf("Redeemed: got %v and %v, want an empty map and nil", got.Finals[0].Redeemed, got.Finals[1].Redeemed)
	}
}

func TestLineFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := history.NewWriter(&buf)
	if err := w.Event(history.Event{Time: t0, Kind: history.EventHeal}); err != nil {
		t.Fatal(err)
	}
	want := `{"event":{"time":"2026-05-01T12:00:00.123456789Z","kind":"heal"}}` + "\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 200
	// A long value makes a torn or interleaved line likely if writes were
	// not one per record.
	long := strings.Repeat("x", 5000)
	var wg sync.WaitGroup
	for c := range workers {
		wg.Go(func() {
			for i := range each {
				op := history.Op{ID: int64(c*each + i), Client: c, Node: "n1", Kind: history.KindCRL, Key: "1",
					Invoke: t0, Complete: t0, Result: history.ResultFail, Error: long}
				if err := w.Op(op); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := history.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Ops) != workers*each || h.Truncated {
		t.Fatalf("read %d ops (truncated %v), want %d", len(h.Ops), h.Truncated, workers*each)
	}
	seen := map[int64]bool{}
	for _, op := range h.Ops {
		seen[op.ID] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct ids, want %d", len(seen), workers*each)
	}
	if err := w.Op(history.Op{ID: 1, Kind: history.KindCRL, Key: "1", Result: history.ResultOK}); err == nil {
		t.Error("Op after Close: no error")
	}
}

func TestCreateRefusesExistingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	if err := os.WriteFile(path, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := history.Create(path); err == nil {
		t.Fatal("Create over an existing history: no error")
	}
}

func TestTruncatedLastLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	want := sample()
	write(t, history.NewWriter(&buf), want)
	full := buf.String()
	// Cut inside the last record, as a harness killed mid-write leaves it.
	cut := full[:len(full)-20]
	got, err := history.Read(strings.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Truncated {
		t.Error("Truncated = false for a history cut mid-line")
	}
	want.Finals = want.Finals[:2]
	want.Truncated = true
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prefix (-want +got):\n%s", diff)
	}

	// A complete last line without its newline is kept.
	got, err = history.Read(strings.NewReader(strings.TrimSuffix(full, "\n")))
	if err != nil || got.Truncated || len(got.Finals) != 3 {
		t.Errorf("last line without newline: %d finals, truncated %v, err %v; want 3, false, nil", len(got.Finals), got.Truncated, err)
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	op := `{"op":{"id":1,"node":"n1","kind":"crl","key":"1","invoke":"2026-05-01T12:00:00Z","complete":"2026-05-01T12:00:00Z","result":"ok"}}`
	tests := []struct {
		name, in, want string
	}{
		{"fail/bad line in the middle", op + "\n{\"op\":\n" + op + "\n", "line 2"},
		{"fail/bad last line with newline", op + "\n{\"op\":\n", "line 2"},
		{"fail/two records on a line", `{"op":{"id":1},"event":{"kind":"heal"}}` + "\n", "exactly one"},
		{"fail/no record", `{"meta":{}}` + "\n", "exactly one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := history.Read(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	h, err := history.Read(strings.NewReader("\n" + op + "\n\n"))
	if err != nil || len(h.Ops) != 1 {
		t.Errorf("blank lines: %d ops, err %v; want 1, nil", len(h.Ops), err)
	}
}

func TestWriterValidates(t *testing.T) {
	t.Parallel()
	ok := history.Op{ID: 1, Node: "n1", Kind: history.KindRead, Key: "aa", Value: history.ValueTrusted,
		Invoke: t0, Complete: t0, Result: history.ResultOK}
	tests := []struct {
		name string
		edit func(*history.Op)
	}{
		{"fail/kind", func(o *history.Op) { o.Kind = "write" }},
		{"fail/result", func(o *history.Op) { o.Result = "timeout" }},
		{"fail/backwards", func(o *history.Op) { o.Complete = t0.Add(-time.Nanosecond) }},
		{"fail/no key", func(o *history.Op) { o.Key = "" }},
		{"fail/read value", func(o *history.Op) { o.Value = "yes" }},
		{"fail/redeem without certificate", func(o *history.Op) { o.Kind, o.Value = history.KindRedeem, "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			op := ok
			tt.edit(&op)
			if err := history.NewWriter(&buf).Op(op); err == nil {
				t.Errorf("no error for %+v", op)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %q", buf.String())
			}
		})
	}
	// An issue that failed has no token id.
	noID := history.Op{ID: 2, Node: "n1", Kind: history.KindIssue, Invoke: t0, Complete: t0, Result: history.ResultUnknown}
	if err := history.NewWriter(&bytes.Buffer{}).Op(noID); err != nil {
		t.Errorf("unknown issue without a key: %v", err)
	}
	if err := history.NewWriter(&bytes.Buffer{}).Event(history.Event{Time: t0, Kind: history.EventFaultStart}); err == nil {
		t.Error("fault-start without a fault kind: no error")
	}
}

// failing is a writer that fails after n writes.
type failing struct{ n int }

func (f *failing) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriteErrorIsSticky(t *testing.T) {
	t.Parallel()
	w := history.NewWriter(&failing{n: 1})
	e := history.Event{Time: t0, Kind: history.EventHeal}
	for i, want := range []bool{false, true, true} {
		err := w.Event(e)
		if (err != nil) != want {
			t.Errorf("write %d: err %v, want error %v", i, err, want)
		}
	}
}
