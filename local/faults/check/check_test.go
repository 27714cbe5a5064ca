package check_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/local/faults/check"
	"github.com/trustlog/trustlog/local/faults/history"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// Fingerprints and tokens of the synthetic histories.
const (
	fpA, fpB, fpC, fpD = "aaaa", "bbbb", "cccc", "dddd"
	fpE                = "eeee"
	tok1, tok2         = "tok-1", "tok-2"
)

// builder makes synthetic histories; times are in milliseconds.
type builder struct{ h history.History }

func (b *builder) op(node, kind, key, value string, invoke, complete int, result string, status int) *builder {
	b.h.Ops = append(b.h.Ops, history.Op{
		ID: int64(len(b.h.Ops) + 1), Client: len(b.h.Ops) % 4, Node: node, Kind: kind, Key: key, Value: value,
		Invoke: at(invoke), Complete: at(complete), Status: status, Result: result,
	})
	return b
}

func (b *builder) add(node, fp string, i, c int, result string) *builder {
	return b.op(node, history.KindAdd, fp, "", i, c, result, 201)
}

func (b *builder) remove(node, fp string, i, c int, result string) *builder {
	return b.op(node, history.KindRemove, fp, "", i, c, result, 200)
}

func (b *builder) read(node, fp, value string, i, c int) *builder {
	return b.op(node, history.KindRead, fp, value, i, c, history.ResultOK, 200)
}

func (b *builder) issue(node, tok string, i, c int) *builder {
	return b.op(node, history.KindIssue, tok, tok, i, c, history.ResultOK, 202)
}

func (b *builder) redeem(node, tok, fp string, i, c int, result string, status int) *builder {
	return b.op(node, history.KindRedeem, tok, fp, i, c, result, status)
}

func (b *builder) event(ms int, kind, fault string, nodes ...string) *builder {
	b.h.Events = append(b.h.Events, history.Event{Time: at(ms), Kind: kind, Fault: fault, Nodes: nodes})
	return b
}

// finals sets the same final state on nodes n1..n3.
func (b *builder) finals(redeemed map[string]string, fps ...string) *builder {
	b.h.Finals = nil
	for _, n := range []string{"n1", "n2", "n3"} {
		b.h.Finals = append(b.h.Finals, history.Final{Node: n, Seq: 42, Digest: "d42", Certificates: fps, Redeemed: redeemed})
	}
	return b
}

// final replaces node's final state's certificates.
func (b *builder) final(node string, fps ...string) *builder {
	for i := range b.h.Finals {
		if b.h.Finals[i].Node == node {
			b.h.Finals[i].Certificates = fps
		}
	}
	return b
}

func run(t *testing.T, b *builder, cfg check.Config) *check.Report {
	t.Helper()
	r, err := check.Check(&b.h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// clean is a history with one of everything, handled right.
func clean() *builder {
	b := &builder{}
	b.add("n1", fpA, 0, 10, history.ResultOK).
		read("n2", fpA, history.ValueTrusted, 20, 30).
		remove("n1", fpA, 40, 50, history.ResultOK).
		read("n1", fpA, history.ValueUntrusted, 60, 70).
		read("n2", fpA, history.ValueTrusted, 60, 70). // 10 ms behind: within the bound
		add("n2", fpB, 100, 110, history.ResultOK).
		add("n3", fpB, 120, 130, history.ResultFail). // already trusted
		issue("n1", tok1, 200, 210).
		redeem("n2", tok1, fpC, 220, 230, history.ResultOK, 201).
		redeem("n3", tok1, fpD, 240, 250, history.ResultFail, 403). // used
		redeem("n1", tok1, fpD, 260, 270, history.ResultFail, 503). // front door refused
		op("n1", history.KindCRL, "7", "", 300, 310, history.ResultOK, 200).
		event(1000, history.EventFaultStart, history.FaultPartition, "n3").
		event(2000, history.EventFaultEnd, history.FaultPartition, "n3").
		event(2000, history.EventHeal, "").
		event(3500, history.EventConverged, "").
		event(4000, history.EventFaultStart, history.FaultKill, "n2").
		event(4100, history.EventFaultEnd, history.FaultKill, "n2").
		event(4100, history.EventRestart, "", "n2").
		event(4100, history.EventHeal, "").
		event(4600, history.EventConverged, "").
		finals(map[string]string{tok1: fpC}, fpB, fpC)
	return b
}

func TestCleanHistoryPasses(t *testing.T) {
	t.Parallel()
	r := run(t, clean(), check.Config{})
	if !r.OK() {
		t.Fatalf("clean history fails:\n%s", r)
	}
	want := check.Convergence{Heals: 2, Converged: 2, P50: check.Duration(500 * time.Millisecond),
		P99: check.Duration(1500 * time.Millisecond), Max: check.Duration(1500 * time.Millisecond)}
	if diff := cmp.Diff(want, r.Convergence); diff != "" {
		t.Errorf("convergence (-want +got):\n%s", diff)
	}
	if r.AdmitsWithinBound != 1 || r.MaxAdmitLag != check.Duration(10*time.Millisecond) {
		t.Errorf("admits within the bound: %d, largest lag %v; want 1, 10ms", r.AdmitsWithinBound, r.MaxAdmitLag)
	}
	if diff := cmp.Diff(map[string]int{history.FaultPartition: 1, history.FaultKill: 1}, r.Faults); diff != "" {
		t.Errorf("faults (-want +got):\n%s", diff)
	}
	if got := r.Operations[history.KindRedeem]; got[history.ResultOK] != 1 || got[history.ResultFail] != 2 {
		t.Errorf("redeem counts %v, want ok 1, fail 2", got)
	}
	for _, l := range r.Linearizability {
		if l.Result != check.ResultOK || l.Keys == 0 {
			t.Errorf("%s: %s over %d keys, want ok over some", l.Model, l.Result, l.Keys)
		}
	}
}

func TestViolations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		history func() *builder
		want    func(r *check.Report) string // what is wrong with r, "" if nothing
		model   string                       // a model that must be illegal
		only    bool                         // the model is the only failure
	}{
		{
			name: "fail/lost add",
			history: func() *builder {
				return clean().final("n2", fpC) // fpB's acknowledged add is gone
			},
			want: lost(check.Loss{Node: "n2", Kind: check.LossAdd, Key: fpB, Op: 6}),
		},
		{
			name: "fail/lost removal",
			history: func() *builder {
				return clean().final("n3", fpA, fpB, fpC) // fpA's removal undone
			},
			want: lost(check.Loss{Node: "n3", Kind: check.LossRemove, Key: fpA, Op: 3}),
		},
		{
			name: "fail/phantom",
			history: func() *builder {
				b := clean().add("n1", fpD, 500, 510, history.ResultFail)
				return b.final("n1", fpB, fpC, fpD)
			},
			want: lost(check.Loss{Node: "n1", Kind: check.LossPhantom, Key: fpD}),
		},
		{
			name: "fail/lost redemption",
			history: func() *builder {
				b := clean()
				b.h.Finals[1].Redeemed = map[string]string{}
				return b
			},
			want: lost(check.Loss{Node: "n2", Kind: check.LossRedemption, Key: tok1, Op: 9}),
		},
		{
			name: "fail/double redemption",
			history: func() *builder {
				b := clean().redeem("n3", tok1, fpD, 280, 290, history.ResultOK, 201)
				return b.finals(map[string]string{tok1: fpC}, fpB, fpC, fpD)
			},
			want: func(r *check.Report) string {
				return cmp.Diff([]check.Double{{Token: tok1, Ops: []int64{9, 13}, Fingerprints: []string{fpC, fpD}}}, r.DoubleRedemptions)
			},
			model: "tokens",
		},
		{
			name: "fail/double redemption in final states",
			history: func() *builder {
				b := clean()
				b.h.Finals[2].Redeemed = map[string]string{tok1: fpD}
				return b
			},
			want: func(r *check.Report) string {
				return cmp.Diff([]check.Double{{Token: tok1, Ops: []int64{9}, Fingerprints: []string{fpC, fpD}}}, r.DoubleRedemptions)
			},
		},
		{
			name: "fail/redeemed before issue",
			history: func() *builder {
				b := &builder{}
				return b.redeem("n1", tok2, fpD, 0, 10, history.ResultOK, 201).issue("n2", tok2, 100, 110)
			},
			want:  func(r *check.Report) string { return "" },
			model: "tokens",
			only:  true,
		},
		{
			name: "fail/stale admit",
			history: func() *builder {
				// Admitted 31 s after the removal was acknowledged elsewhere.
				return clean().read("n3", fpA, history.ValueTrusted, 31050, 31060)
			},
			want: func(r *check.Report) string {
				return cmp.Diff([]check.Stale{{Read: 13, Node: "n3", Key: fpA, Write: 3, WriteNode: "n1",
					Lag: check.Duration(31 * time.Second)}}, r.StaleAdmits)
			},
		},
		{
			name: "fail/untrusted admit",
			history: func() *builder {
				// fpD was never added; its redemption was refused.
				return clean().read("n2", fpD, history.ValueTrusted, 300, 310)
			},
			want: func(r *check.Report) string {
				return cmp.Diff([]check.Stale{{Read: 13, Node: "n2", Key: fpD}}, r.UntrustedAdmits)
			},
		},
		{
			name: "fail/add of a trusted certificate acknowledged",
			history: func() *builder {
				return clean().add("n3", fpB, 150, 160, history.ResultOK)
			},
			want:  func(r *check.Report) string { return "" },
			model: "trust",
			only:  true,
		},
		{
			name: "fail/read your writes",
			history: func() *builder {
				// Admitted by the very node that acknowledged the removal.
				return clean().read("n1", fpA, history.ValueTrusted, 80, 90)
			},
			want: func(r *check.Report) string {
				if len(r.StaleAdmits) != 0 || r.AdmitsWithinBound != 2 {
					return "want the admit counted within the bound"
				}
				return cmp.Diff([]check.Stale{{Read: 13, Node: "n1", Key: fpA, Write: 3, WriteNode: "n1",
					Lag: check.Duration(30 * time.Millisecond)}}, r.ReadYourWrites)
			},
		},
		{
			name: "fail/read your writes before a restart",
			history: func() *builder {
				// A restart of n1 after the read is no excuse.
				return clean().read("n1", fpA, history.ValueTrusted, 80, 90).event(95, history.EventRestart, "", "n1")
			},
			want: func(r *check.Report) string { return cmp.Diff(1, len(r.ReadYourWrites)) },
		},
		{
			name: "fail/never converged",
			history: func() *builder {
				return clean().event(5000, history.EventHeal, "")
			},
			want: func(r *check.Report) string {
				return cmp.Diff(1, r.Convergence.NotConverged)
			},
		},
		{
			name: "fail/final states differ",
			history: func() *builder {
				b := clean()
				b.h.Finals[0].Digest = "other"
				return b
			},
			want: func(r *check.Report) string { return cmp.Diff(false, r.Finals.Agree) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tt.history(), check.Config{})
			if r.OK() {
				t.Fatalf("violation not detected:\n%s", r)
			}
			want := 1 // the violation, and its model's if it has one
			if tt.model != "" && !tt.only {
				want++
			}
			if len(r.Failures) != want {
				t.Errorf("want %d failures, got %q", want, r.Failures)
			}
			if msg := tt.want(r); msg != "" {
				t.Errorf("%s\nreport:\n%s", msg, r)
			}
			for _, l := range r.Linearizability {
				if want := l.Model == tt.model; want != (l.Result == check.ResultIllegal) {
					t.Errorf("%s: %s", l.Model, l.Result)
				}
			}
		})
	}
}

func lost(want ...check.Loss) func(*check.Report) string {
	return func(r *check.Report) string { return cmp.Diff(want, r.Lost) }
}

// TestUnknownsAreNoViolation: every unknown operation below may have
// taken effect, or not, and the history is fine either way.
func TestUnknownsAreNoViolation(t *testing.T) {
	t.Parallel()
	b := &builder{}
	// fpA: removed, then an add that timed out; later admitted (the
	// unknown add took effect late) and trusted on n1 only.
	b.add("n1", fpA, 0, 10, history.ResultOK).
		remove("n1", fpA, 20, 30, history.ResultOK).
		add("n2", fpA, 40, 5040, history.ResultUnknown).
		read("n3", fpA, history.ValueTrusted, 60000, 60010).
		// fpB: a removal that timed out; admitted long after.
		add("n1", fpB, 0, 10, history.ResultOK).
		remove("n3", fpB, 20, 5020, history.ResultUnknown).
		read("n2", fpB, history.ValueTrusted, 60000, 60010).
		// fpE: an add that timed out before the removal; it may still
		// have taken effect after it.
		add("n3", fpE, 0, 5, history.ResultUnknown).
		remove("n1", fpE, 20, 30, history.ResultOK).
		read("n2", fpE, history.ValueTrusted, 60000, 60010).
		// tok1: a redemption that timed out and took effect, so the next
		// attempt is refused; fpC is trusted, whoever asks.
		issue("n1", tok1, 0, 10).
		redeem("n2", tok1, fpC, 20, 5020, history.ResultUnknown, 0).
		redeem("n2", tok1, fpC, 6000, 6010, history.ResultFail, 403).
		// tok2: a redemption that timed out and did not take effect.
		issue("n1", tok2, 0, 10).
		redeem("n3", tok2, fpD, 20, 5020, history.ResultUnknown, 0).
		redeem("n1", tok2, fpD, 6000, 6010, history.ResultOK, 201).
		// An issue that timed out has no token id.
		op("n2", history.KindIssue, "", "", 100, 5100, history.ResultUnknown, 0).
		event(7000, history.EventHeal, "").
		event(8000, history.EventConverged, "").
		finals(map[string]string{tok1: fpC, tok2: fpD}, fpB, fpC, fpD).
		final("n1", fpA, fpB, fpC, fpD)
	b.h.Finals[0].Digest, b.h.Finals[1].Digest, b.h.Finals[2].Digest = "d", "d", "d"
	r := run(t, b, check.Config{})
	if !r.OK() {
		t.Fatalf("false alarm:\n%s", r)
	}
	// fpA, fpB, fpE and fpC (trusted by the unknown redemption alone).
	if r.Undetermined != 4 {
		t.Errorf("undetermined fingerprints: %d, want 4\n%s", r.Undetermined, r)
	}
}

// TestRestartEndsReadYourWrites: a node restarted since it acknowledged
// a removal is another instance; within the staleness bound its admit is
// lag, not a broken promise.
func TestRestartEndsReadYourWrites(t *testing.T) {
	t.Parallel()
	b := clean().event(75, history.EventRestart, "", "n1").read("n1", fpA, history.ValueTrusted, 80, 90)
	r := run(t, b, check.Config{})
	if !r.OK() || r.AdmitsWithinBound != 2 {
		t.Errorf("admit after a restart: OK %v, %d within the bound; want true, 2\n%s", r.OK(), r.AdmitsWithinBound, r)
	}
}

// TestTruncatedHistory: a harness that died leaves no final states; an
// unfinished heal is then no violation.
func TestTruncatedHistory(t *testing.T) {
	t.Parallel()
	b := clean()
	b.h.Finals = nil
	b.h.Truncated = true
	b.event(9000, history.EventHeal, "")
	r := run(t, b, check.Config{})
	if !r.OK() || r.Convergence.NotConverged != 1 {
		t.Errorf("got OK %v with %d unconverged heals, want true and 1:\n%s", r.OK(), r.Convergence.NotConverged, r)
	}
}

func TestStalenessBound(t *testing.T) {
	t.Parallel()
	b := clean().read("n3", fpA, history.ValueTrusted, 1050, 1060) // 1 s after the removal
	if r := run(t, b, check.Config{}); !r.OK() {
		t.Errorf("1 s lag fails under the default bound:\n%s", r)
	}
	r := run(t, b, check.Config{StalenessBound: 500 * time.Millisecond})
	if len(r.StaleAdmits) != 1 {
		t.Errorf("1 s lag under a 500 ms bound: %d stale admits, want 1:\n%s", len(r.StaleAdmits), r)
	}
}

func TestCheckFileWritesVisualization(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "run.jsonl")
	w, err := history.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	b := clean().
		redeem("n3", tok1, fpD, 280, 290, history.ResultOK, 201).
		redeem("n1", tok1, fpA, 300, 5300, history.ResultUnknown, 0) // never returns, in the picture too
	for _, op := range b.h.Ops {
		if err := w.Op(op); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := check.CheckFile(path, check.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "run-tokens.html")
	l := r.Linearizability[0]
	if l.Model != "tokens" || l.Visualization != want || !cmp.Equal(l.IllegalKeys, []string{tok1}) {
		t.Fatalf("tokens: %+v, want illegal key %s visualized in %s", l, tok1, want)
	}
	html, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "redeem(") {
		t.Errorf("visualization does not describe the redemptions")
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	if _, err := check.Check(&clean().h, check.Config{StalenessBound: -time.Second}); err == nil {
		t.Error("negative staleness bound: no error")
	}
	b := clean()
	b.h.Ops[1].ID = b.h.Ops[0].ID
	if _, err := check.Check(&b.h, check.Config{}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate ids: err %v", err)
	}
	b = clean()
	b.h.Ops[0].Result = "maybe"
	if _, err := check.Check(&b.h, check.Config{}); err == nil {
		t.Error("unknown result: no error")
	}
}

// TestReportGolden pins the text and JSON renderings of a report with a
// violation of every kind.
func TestReportGolden(t *testing.T) {
	t.Parallel()
	b := clean().
		final("n2", fpC).
		redeem("n3", tok1, fpD, 280, 290, history.ResultOK, 201).
		read("n3", fpA, history.ValueTrusted, 31050, 31060).
		event(40000, history.EventHeal, "")
	r := run(t, b, check.Config{})
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", []byte(r.String()))
	golden(t, "report.json", append(js, '\n'))

	var back check.Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, &back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// TestLaggingRefusal: a node that has not yet applied a token's issue
// refuses it; within the staleness bound that is no violation, beyond it
// the token history is not linearizable.
func TestLaggingRefusal(t *testing.T) {
	t.Parallel()
	b := &builder{}
	b.issue("n1", tok1, 0, 10).
		redeem("n3", tok1, fpA, 15, 20, history.ResultFail, 403).
		redeem("n1", tok1, fpA, 30, 40, history.ResultOK, 201)
	if r := run(t, b, check.Config{}); !r.OK() {
		t.Errorf("refusal 5 ms after the issue fails under the default bound:\n%s", r)
	}
	r := run(t, b, check.Config{StalenessBound: time.Millisecond})
	if l := r.Linearizability[0]; l.Result != check.ResultIllegal || !cmp.Equal(l.IllegalKeys, []string{tok1}) {
		t.Errorf("refusal 5 ms after the issue under a 1 ms bound: %+v, want %s illegal", l, tok1)
	}
}

// TestRevokedAdmits: a certificate an acknowledged CRL revoked may still be
// admitted within the staleness bound, never past it; an unknown CRL, or a
// CRL revoking other certificates, proves nothing.
func TestRevokedAdmits(t *testing.T) {
	t.Parallel()
	bound := 500 * time.Millisecond
	for _, tc := range []struct {
		name        string
		crl         func(b *builder) *builder
		readAt      int
		wantAdmits  int
		wantInBound int
	}{
		{name: "fail/admitted past the bound", readAt: 900, wantAdmits: 1,
			crl: func(b *builder) *builder {
				return b.op("n1", history.KindCRL, "8", fpC+","+fpB, 300, 310, history.ResultOK, 200)
			}},
		{name: "ok/admitted within the bound", readAt: 700, wantInBound: 1,
			crl: func(b *builder) *builder {
				return b.op("n1", history.KindCRL, "8", fpB, 300, 310, history.ResultOK, 200)
			}},
		{name: "ok/the CRL's answer was lost", readAt: 900,
			crl: func(b *builder) *builder {
				return b.op("n1", history.KindCRL, "8", fpB, 300, 310, history.ResultUnknown, 0)
			}},
		{name: "fail/a later CRL keeps the revocation", readAt: 900, wantAdmits: 1,
			crl: func(b *builder) *builder {
				b.op("n1", history.KindCRL, "8", fpB, 200, 210, history.ResultUnknown, 0)
				return b.op("n2", history.KindCRL, "9", fpC, 300, 310, history.ResultOK, 200)
			}},
		{name: "ok/the CRL revokes another certificate", readAt: 900,
			crl: func(b *builder) *builder {
				return b.op("n1", history.KindCRL, "8", fpC, 300, 310, history.ResultOK, 200)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.crl(clean()).read("n3", fpB, history.ValueTrusted, tc.readAt, tc.readAt+10)
			r := run(t, b, check.Config{StalenessBound: bound})
			if len(r.RevokedAdmits) != tc.wantAdmits || r.RevokedWithinBound != tc.wantInBound {
				t.Fatalf("revoked admits %v, within the bound %d; want %d and %d", r.RevokedAdmits, r.RevokedWithinBound, tc.wantAdmits, tc.wantInBound)
			}
			if r.OK() != (tc.wantAdmits == 0) {
				t.Errorf("OK %v with %d revoked admits: %v", r.OK(), tc.wantAdmits, r.Failures)
			}
		})
	}
}

// TestRevokedRefusals: a certificate a CRL revoked may be refused although
// its add was acknowledged, by any node, its own included: the refusal is
// neither stale nor a read-your-writes violation.
func TestRevokedRefusals(t *testing.T) {
	t.Parallel()
	for _, result := range []string{history.ResultOK, history.ResultUnknown} {
		b := clean().op("n2", history.KindCRL, "8", fpB, 300, 310, result, 200).
			read("n2", fpB, history.ValueUntrusted, 900, 910)
		r := run(t, b, check.Config{StalenessBound: 500 * time.Millisecond})
		if !r.OK() || len(r.ReadYourWrites) != 0 || r.StaleRefusals != 0 {
			t.Errorf("CRL %s: OK %v, read-your-writes %v, stale refusals %d: %v", result, r.OK(), r.ReadYourWrites, r.StaleRefusals, r.Failures)
		}
	}
	// Without the CRL the same refusal misses the node's own write.
	r := run(t, clean().read("n2", fpB, history.ValueUntrusted, 900, 910), check.Config{StalenessBound: 500 * time.Millisecond})
	if len(r.ReadYourWrites) != 1 {
		t.Errorf("refusal of an added certificate without a CRL: read-your-writes %v, want one", r.ReadYourWrites)
	}
}
