// Package check judges the history of a fault-injection run
// (package history) and reports what went wrong, as a Report that renders
// as text (Report.String) and JSON.
//
// # Rules
//
// Failed operations are left out of every rule: the history promises they
// did not take effect. A redemption is also an add of its certificate,
// which it trusts. Every fingerprint the workload uses is assumed
// untrusted at the start, and tokens are assumed not to expire during the
// run. "A definitely precedes B" means A completed before B was invoked;
// operations that overlap may have taken effect in either order. An
// unknown operation may take effect at any moment after its invocation,
// even after it completed, or never.
//
// Lost changes (must be 0). For each fingerprint, the acknowledged and
// unknown adds and removals determine the states it may end in: the value
// of each acknowledged write that no other acknowledged write definitely
// follows, the value of each unknown write, and, with no acknowledged
// write at all, the initial "untrusted". When those agree, every node
// whose final state could be read must show it: an acknowledged add
// missing is a lost add, an acknowledged removal undone (the certificate
// trusted again) a lost removal, and a certificate trusted although no
// add of it can have taken effect a phantom. When they disagree the
// fingerprint is undetermined and counted, not judged. A node whose final
// state records redemptions must show every acknowledged redemption; one
// that does not is a lost redemption.
//
// Double redemptions (must be 0): a token that more than one acknowledged
// redemption consumed, or that the acknowledged redemptions and the
// nodes' final states attribute to more than one certificate.
//
// Reads. Nodes answer reads from their own projection, which may lag the
// log by design, up to the staleness bound. A read of fingerprint F
// answered v is contradicted by an acknowledged write of the other value
// that completed before the read was invoked, unless a write of v can
// explain the answer: an unknown one invoked before the read completed,
// or an acknowledged one that does not definitely precede the
// contradicting write. The read's lag is the time from the latest
// contradicting write's acknowledgment to the read's invocation. Since
// the service refuses to add a trusted certificate or remove an untrusted
// one, the state just before that write was v, so a lag within the bound
// is legitimate: the read is consistent with some state from the bound
// before its invocation to its completion, and with no state when the lag
// is longer. Verdicts:
//   - stale admit: "trusted", contradicted by a removal, lag beyond the
//     bound. A violation (must be 0). Within the bound it is counted as
//     information, with the largest lag seen.
//   - untrusted admit: "trusted", though no add of F invoked before the
//     read completed exists. A violation (must be 0).
//   - stale refusal: "untrusted", contradicted by an add. Information.
//   - read-your-writes violation: the read went to the very node that
//     acknowledged the contradicting write, and no restart event of that
//     node lies between the two (docs/architecture.md, D2: the promise is
//     the instance's). A violation, whatever the lag.
//
// Revocations. A CRL operation's Value lists every fingerprint the CRL
// revokes (the workload's CRLs are cumulative, so a revocation is never
// undone). A read answered "trusted" invoked more than the bound after an
// acknowledged CRL revoking its certificate completed is a revoked admit,
// a violation (must be 0); within the bound it is information. An unknown
// CRL proves nothing. A refusal of a certificate that a CRL which may have
// taken effect (acknowledged or unknown, invoked before the read
// completed) revokes is explained by it: it is neither a stale refusal nor
// a read-your-writes violation.
//
// Convergence. Each heal event is paired with the first converged event
// after it; the delays are reported as p50, p99 (nearest rank) and
// maximum. When the history has final states (the run finished), a heal
// that convergence never followed is a violation, and so are readable
// final states with different digests.
//
// Linearizability, checked with porcupine, each model partitioned by key.
// An acknowledged operation is checked at its real interval; an unknown
// one never returns, so porcupine may place it at any moment after its
// invocation, or after everything else, which is the same as never.
//
//   - Model "tokens", one register per token id: an issue creates the
//     token; a redemption succeeds iff the token exists and is unredeemed,
//     and then records its certificate. A redemption refused with status
//     403 ("no matching token") requires the token to be missing or used;
//     since a node decides that from its own projection without appending,
//     the refusal is checked as of any moment from the staleness bound
//     before its invocation to its completion. Other failures are left out.
//   - Model "trust", one register per fingerprint, untrusted at the start:
//     an acknowledged add (or redemption) requires untrusted and makes it
//     trusted, an acknowledged removal the reverse; an unknown one sets its
//     value. Reads are not part of this model: with answers allowed to lag
//     by the bound, every read of a key overlaps all the others within the
//     bound, and porcupine's search of a violating history grows as two to
//     the number of operations in flight (a key read fifty times in thirty
//     seconds never finishes). The rules for reads above judge each read
//     against the writes instead, in linear time, with the same window.
//
// A check that runs out of time (Config.Timeout) is reported as
// inconclusive, not as a violation. For a model that fails, each key is
// checked alone to name the failing ones (at most ten), and porcupine's
// visualization of those is written to <VisualizePrefix>-<model>.html.
package check

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/trustlog/trustlog/local/faults/history"
)

// DefaultStalenessBound is Config.StalenessBound's zero value.
const DefaultStalenessBound = 30 * time.Second

// DefaultTimeout is Config.Timeout's zero value.
const DefaultTimeout = time.Minute

// maxBadKeys bounds the keys a failing linearizability check names and
// visualizes.
const maxBadKeys = 10

// Config parameterises a check. The zero value is usable.
type Config struct {
	// StalenessBound is how far a node's answers may lag behind the log.
	// Zero means DefaultStalenessBound.
	StalenessBound time.Duration
	// Timeout bounds each linearizability check (a model's whole history,
	// then each key of a failing one). Zero means DefaultTimeout.
	Timeout time.Duration
	// VisualizePrefix is where porcupine's visualizations of failing
	// models go: <VisualizePrefix>-<model>.html. Empty writes none.
	VisualizePrefix string
}

// Validate reports a Config that cannot be used.
func (c Config) Validate() error {
	if c.StalenessBound < 0 {
		return errors.New("check: negative staleness bound")
	}
	if c.Timeout < 0 {
		return errors.New("check: negative timeout")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.StalenessBound == 0 {
		c.StalenessBound = DefaultStalenessBound
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// CheckFile reads the history in path and checks it. An empty
// cfg.VisualizePrefix becomes path without its extension, so
// visualizations land next to the history.
func CheckFile(path string, cfg Config) (*Report, error) {
	h, err := history.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if cfg.VisualizePrefix == "" {
		cfg.VisualizePrefix = strings.TrimSuffix(path, filepath.Ext(path))
	}
	return Check(h, cfg)
}

// Check judges h. It returns an error for an invalid configuration or a
// history it cannot interpret (an invalid record, duplicate operation ids),
// or when it cannot write a visualization; violations are in the Report.
func Check(h *history.History, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ids := make(map[int64]bool, len(h.Ops))
	for _, op := range h.Ops {
		if err := op.Validate(); err != nil {
			return nil, err
		}
		if ids[op.ID] {
			return nil, fmt.Errorf("check: duplicate op id %d", op.ID)
		}
		ids[op.ID] = true
	}
	for _, e := range h.Events {
		if err := e.Validate(); err != nil {
			return nil, err
		}
	}
	r := &Report{
		Ops:            len(h.Ops),
		Events:         len(h.Events),
		Truncated:      h.Truncated,
		StalenessBound: Duration(cfg.StalenessBound),
		// Empty lists, not null, in JSON.
		Lost:              []Loss{},
		DoubleRedemptions: []Double{},
		StaleAdmits:       []Stale{},
		UntrustedAdmits:   []Stale{},
		RevokedAdmits:     []Stale{},
		ReadYourWrites:    []Stale{},
	}
	r.count(h)
	w := newWorkload(h.Ops)
	r.checkFinals(h.Finals)
	r.checkLosses(w, h.Finals)
	r.checkRedemptions(h.Ops, h.Finals)
	r.checkReads(w, h.Events, cfg.StalenessBound)
	r.checkRevocations(h.Ops, cfg.StalenessBound)
	r.checkConvergence(h.Events)
	for _, m := range []*model{tokenModel(h.Ops, cfg.StalenessBound), trustModel(h.Ops)} {
		l, err := m.check(cfg)
		if err != nil {
			return nil, err
		}
		r.Linearizability = append(r.Linearizability, l)
	}
	r.judge(len(h.Finals) > 0)
	return r, nil
}

// count fills the operation and fault counts.
func (r *Report) count(h *history.History) {
	r.Operations = map[string]map[string]int{}
	for _, op := range h.Ops {
		if r.Operations[op.Kind] == nil {
			r.Operations[op.Kind] = map[string]int{}
		}
		r.Operations[op.Kind][op.Result]++
	}
	r.Faults = map[string]int{}
	open := map[string]int{}
	for _, e := range h.Events {
		switch e.Kind {
		case history.EventFaultStart:
			r.Faults[e.Fault]++
			open[faultKey(e)]++
		case history.EventFaultEnd:
			if open[faultKey(e)] > 0 {
				open[faultKey(e)]--
			}
		case history.EventRestart:
			r.Restarts++
		}
	}
	for _, n := range open {
		r.OpenFaults += n
	}
}

// faultKey identifies the fault a fault-start or fault-end event is about.
func faultKey(e history.Event) string {
	nodes := slices.Clone(e.Nodes)
	slices.Sort(nodes)
	return fmt.Sprint(e.Fault, nodes)
}

// checkFinals summarises the final states.
func (r *Report) checkFinals(finals []history.Final) {
	r.Finals.Nodes = len(finals)
	r.Finals.Agree = true
	digest := ""
	for _, f := range finals {
		if f.Err != "" {
			r.Finals.Unreadable = append(r.Finals.Unreadable, f.Node+": "+f.Err)
			continue
		}
		r.Finals.Readable++
		if digest == "" {
			digest, r.Finals.Seq, r.Finals.Digest = f.Digest, f.Seq, f.Digest
		} else if f.Digest != digest {
			r.Finals.Agree = false
		}
	}
	if !r.Finals.Agree {
		r.Finals.Seq, r.Finals.Digest = 0, ""
	}
}

// checkConvergence pairs heals with convergence.
func (r *Report) checkConvergence(events []history.Event) {
	evs := slices.Clone(events)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	var delays []time.Duration
	for i, e := range evs {
		if e.Kind != history.EventHeal {
			continue
		}
		r.Convergence.Heals++
		found := false
		for _, c := range evs[i+1:] {
			if c.Kind == history.EventConverged {
				delays = append(delays, c.Time.Sub(e.Time))
				found = true
				break
			}
		}
		if !found {
			r.Convergence.NotConverged++
		}
	}
	r.Convergence.Converged = len(delays)
	if len(delays) == 0 {
		return
	}
	slices.Sort(delays)
	r.Convergence.P50 = Duration(percentile(delays, 0.50))
	r.Convergence.P99 = Duration(percentile(delays, 0.99))
	r.Convergence.Max = Duration(delays[len(delays)-1])
}

// percentile returns the nearest-rank p-quantile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// judge lists the violations. finished reports that the history has final
// states: the run reached its end.
func (r *Report) judge(finished bool) {
	r.Failures = []string{}
	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if n := len(r.Lost); n > 0 {
		fail("lost acknowledged changes: %d", n)
	}
	if n := len(r.DoubleRedemptions); n > 0 {
		fail("tokens redeemed more than once: %d", n)
	}
	if n := len(r.StaleAdmits); n > 0 {
		fail("stale admits beyond %v: %d", r.StalenessBound, n)
	}
	if n := len(r.UntrustedAdmits); n > 0 {
		fail("admits of never trusted certificates: %d", n)
	}
	if n := len(r.RevokedAdmits); n > 0 {
		fail("admits of revoked certificates beyond %v: %d", r.StalenessBound, n)
	}
	if n := len(r.ReadYourWrites); n > 0 {
		fail("read-your-writes violations: %d", n)
	}
	if !r.Finals.Agree {
		fail("final states differ between nodes")
	}
	if finished && r.Convergence.NotConverged > 0 {
		fail("heals never followed by convergence: %d", r.Convergence.NotConverged)
	}
	for _, l := range r.Linearizability {
		if l.Result == ResultIllegal {
			fail("%s history not linearizable (keys %v)", l.Model, l.IllegalKeys)
		}
	}
}
