package check

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trustlog/trustlog/local/faults/history"
)

// Report is the verdict on one history. Its JSON form is its fields';
// String renders it for people.
type Report struct {
	// Ops and Events count the history's records; Truncated reports that
	// its last line was cut short (the harness died).
	Ops       int  `json:"ops"`
	Events    int  `json:"events"`
	Truncated bool `json:"truncated"`
	// StalenessBound is the bound the check applied.
	StalenessBound Duration `json:"staleness_bound"`

	// Operations counts operations by kind, then result.
	Operations map[string]map[string]int `json:"operations"`
	// Faults counts fault-start events by fault kind; OpenFaults those
	// that no fault-end closed. Restarts counts restart events.
	Faults     map[string]int `json:"faults"`
	OpenFaults int            `json:"open_faults"`
	Restarts   int            `json:"restarts"`

	// Finals summarises the nodes' final states.
	Finals Finals `json:"finals"`
	// Lost lists acknowledged changes missing from a node's final state.
	Lost []Loss `json:"lost"`
	// Undetermined counts fingerprints whose final state the history does
	// not determine (an unknown write could have been last).
	Undetermined int `json:"undetermined"`
	// DoubleRedemptions lists tokens redeemed more than once.
	DoubleRedemptions []Double `json:"double_redemptions"`
	// StaleAdmits lists admitted reads beyond the staleness bound after
	// an acknowledged removal; AdmitsWithinBound counts those within it.
	StaleAdmits       []Stale `json:"stale_admits"`
	AdmitsWithinBound int     `json:"admits_within_bound"`
	// MaxAdmitLag is the largest lag of an admitted read within the bound.
	MaxAdmitLag Duration `json:"max_admit_lag"`
	// UntrustedAdmits lists admitted reads of a certificate that no add
	// can have trusted before they completed (Write is 0).
	UntrustedAdmits []Stale `json:"untrusted_admits"`
	// RevokedAdmits lists admitted reads beyond the staleness bound after
	// an acknowledged CRL revoked the certificate (Write is the CRL's op);
	// RevokedWithinBound counts those within it.
	RevokedAdmits      []Stale `json:"revoked_admits"`
	RevokedWithinBound int     `json:"revoked_within_bound"`
	// StaleRefusals counts refused reads after an acknowledged add.
	StaleRefusals int `json:"stale_refusals"`
	// ReadYourWrites lists reads that missed a write their own node had
	// acknowledged before they began.
	ReadYourWrites []Stale `json:"read_your_writes"`
	// Convergence is the time from heals to agreement.
	Convergence Convergence `json:"convergence"`
	// Linearizability has one entry per model.
	Linearizability []Linearizability `json:"linearizability"`

	// Failures lists the violations, empty when the history passes.
	Failures []string `json:"failures"`
}

// OK reports whether the history passes: no violation.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

// Finals summarises the nodes' final states.
type Finals struct {
	// Nodes counts final states, Readable those without an error.
	Nodes    int `json:"nodes"`
	Readable int `json:"readable"`
	// Unreadable lists "node: error" for the others.
	Unreadable []string `json:"unreadable,omitempty"`
	// Agree reports whether every readable state has the same digest;
	// Seq and Digest are then theirs.
	Agree  bool   `json:"agree"`
	Seq    uint64 `json:"seq,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// Kinds of Loss.
const (
	LossAdd        = "add"        // an acknowledged add or redemption is not trusted
	LossRemove     = "remove"     // an acknowledged removal was undone
	LossPhantom    = "phantom"    // trusted, though no add can have taken effect
	LossRedemption = "redemption" // an acknowledged redemption is not recorded
)

// Loss is an acknowledged change missing from one node's final state.
type Loss struct {
	Node string `json:"node"`
	Kind string `json:"kind"`
	// Key is the fingerprint, or the token id of a lost redemption.
	Key string `json:"key"`
	// Op is the acknowledged operation that was lost (the latest, if
	// several), 0 for a phantom.
	Op int64 `json:"op,omitempty"`
}

// Double is a token redeemed more than once.
type Double struct {
	Token string `json:"token"`
	// Ops are the acknowledged redemptions of the token.
	Ops []int64 `json:"ops"`
	// Fingerprints are the certificates the redemptions and the final
	// states attribute the token to.
	Fingerprints []string `json:"fingerprints"`
}

// Stale is a read whose answer an earlier acknowledged write contradicts.
type Stale struct {
	Read int64  `json:"read"`
	Node string `json:"node"`
	Key  string `json:"key"`
	// Write is the contradicting write (the latest, if several) and
	// WriteNode the node that acknowledged it.
	Write     int64  `json:"write"`
	WriteNode string `json:"write_node"`
	// Lag is from the write's acknowledgment to the read's invocation.
	Lag Duration `json:"lag"`
}

// Convergence is the time from heals to agreement.
type Convergence struct {
	// Heals counts heal events, Converged those followed by convergence,
	// NotConverged the others.
	Heals        int      `json:"heals"`
	Converged    int      `json:"converged"`
	NotConverged int      `json:"not_converged"`
	P50          Duration `json:"p50"`
	P99          Duration `json:"p99"`
	Max          Duration `json:"max"`
}

// Results of a linearizability check (Linearizability.Result).
const (
	ResultOK      = "ok"
	ResultIllegal = "illegal"
	// ResultTimeout means the checker ran out of time: inconclusive.
	ResultTimeout = "timeout"
)

// Linearizability is the outcome of one model's check.
type Linearizability struct {
	// Model is "tokens" or "trust".
	Model string `json:"model"`
	// Keys and Ops count the partitions and operations checked.
	Keys int `json:"keys"`
	Ops  int `json:"ops"`
	// Result is ResultOK, ResultIllegal or ResultTimeout.
	Result string `json:"result"`
	// IllegalKeys and TimedOutKeys name failing keys (at most ten each).
	IllegalKeys  []string `json:"illegal_keys,omitempty"`
	TimedOutKeys []string `json:"timed_out_keys,omitempty"`
	// Visualization is the path of porcupine's HTML visualization of the
	// illegal keys, if one was written.
	Visualization string `json:"visualization,omitempty"`
}

// Duration is a time.Duration that reads and writes as text ("1.5s").
type Duration time.Duration

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// short renders d to the millisecond (to the microsecond below one).
func short(d Duration) string {
	v := time.Duration(d)
	if v != 0 && v < time.Millisecond && v > -time.Millisecond {
		return v.Round(time.Microsecond).String()
	}
	return v.Round(time.Millisecond).String()
}

// String renders the report for people.
func (r *Report) String() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	trunc := ""
	if r.Truncated {
		trunc = " (truncated: the last line was cut short)"
	}
	p("history: %d operations, %d events, %d final states%s", r.Ops, r.Events, r.Finals.Nodes, trunc)

	p("operations:")
	for _, k := range kindsOf(r.Operations) {
		c := r.Operations[k]
		p("  %-7s ok %d, fail %d, unknown %d", k, c[history.ResultOK], c[history.ResultFail], c[history.ResultUnknown])
	}
	faults := "none"
	if len(r.Faults) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.Faults) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Faults[k]))
		}
		faults = strings.Join(parts, ", ")
	}
	p("faults: %s; restarts %d; never ended %d", faults, r.Restarts, r.OpenFaults)

	switch {
	case r.Finals.Nodes == 0:
		p("final states: none (the run did not finish); losses not checked")
	case r.Finals.Readable == 0:
		p("final states: none readable; losses not checked")
	case r.Finals.Agree:
		p("final states: %d of %d readable, agree at seq %d, digest %s", r.Finals.Readable, r.Finals.Nodes, r.Finals.Seq, r.Finals.Digest)
	default:
		p("final states: %d of %d readable, DIFFER", r.Finals.Readable, r.Finals.Nodes)
	}
	for _, u := range r.Finals.Unreadable {
		p("  unreadable %s", u)
	}

	p("lost acknowledged changes: %d (undetermined fingerprints: %d)", len(r.Lost), r.Undetermined)
	list(&b, len(r.Lost), func(i int) string {
		l := r.Lost[i]
		return fmt.Sprintf("%s: %s %s (op %d)", l.Node, l.Kind, l.Key, l.Op)
	})
	p("double redemptions: %d", len(r.DoubleRedemptions))
	list(&b, len(r.DoubleRedemptions), func(i int) string {
		d := r.DoubleRedemptions[i]
		return fmt.Sprintf("token %s: ops %v, certificates %v", d.Token, d.Ops, d.Fingerprints)
	})
	p("stale admits beyond %v: %d (within the bound: %d, largest lag %s; stale refusals: %d)",
		r.StalenessBound, len(r.StaleAdmits), r.AdmitsWithinBound, short(r.MaxAdmitLag), r.StaleRefusals)
	list(&b, len(r.StaleAdmits), func(i int) string {
		s := r.StaleAdmits[i]
		return fmt.Sprintf("read %d on %s of %s: %s after removal %d on %s", s.Read, s.Node, s.Key, short(s.Lag), s.Write, s.WriteNode)
	})
	p("admits of never trusted certificates: %d", len(r.UntrustedAdmits))
	list(&b, len(r.UntrustedAdmits), func(i int) string {
		s := r.UntrustedAdmits[i]
		return fmt.Sprintf("read %d on %s of %s", s.Read, s.Node, s.Key)
	})
	p("admits of revoked certificates beyond %v: %d (within the bound: %d)", r.StalenessBound, len(r.RevokedAdmits), r.RevokedWithinBound)
	list(&b, len(r.RevokedAdmits), func(i int) string {
		s := r.RevokedAdmits[i]
		return fmt.Sprintf("read %d on %s of %s: %s after CRL op %d on %s", s.Read, s.Node, s.Key, short(s.Lag), s.Write, s.WriteNode)
	})
	p("read-your-writes violations: %d", len(r.ReadYourWrites))
	list(&b, len(r.ReadYourWrites), func(i int) string {
		s := r.ReadYourWrites[i]
		return fmt.Sprintf("read %d on %s of %s: %s after write %d on the same node", s.Read, s.Node, s.Key, short(s.Lag), s.Write)
	})
	c := r.Convergence
	p("convergence after heal: %d heals, %d converged (p50 %s, p99 %s, max %s), %d did not",
		c.Heals, c.Converged, short(c.P50), short(c.P99), short(c.Max), c.NotConverged)

	p("linearizability:")
	for _, l := range r.Linearizability {
		line := fmt.Sprintf("  %-6s %s (%d keys, %d operations)", l.Model, l.Result, l.Keys, l.Ops)
		if len(l.IllegalKeys) > 0 {
			line += fmt.Sprintf("; illegal keys %v", l.IllegalKeys)
		}
		if len(l.TimedOutKeys) > 0 {
			line += fmt.Sprintf("; inconclusive keys %v", l.TimedOutKeys)
		}
		if l.Visualization != "" {
			line += "; see " + l.Visualization
		}
		p("%s", line)
	}
	if r.OK() {
		p("verdict: PASS")
	} else {
		p("verdict: FAIL")
		for _, f := range r.Failures {
			p("  %s", f)
		}
	}
	return b.String()
}

// maxListed bounds the items of each list the text rendering shows; the
// JSON has them all.
const maxListed = 20

// list writes the first maxListed of n items, indented, and how many it
// left out.
func list(b *strings.Builder, n int, item func(i int) string) {
	for i := range min(n, maxListed) {
		fmt.Fprintf(b, "  %s\n", item(i))
	}
	if n > maxListed {
		fmt.Fprintf(b, "  … and %d more\n", n-maxListed)
	}
}

// kindsOf returns the operation kinds of counts, known ones first in
// history.Kinds order.
func kindsOf(counts map[string]map[string]int) []string {
	var out []string
	for _, k := range history.Kinds {
		if _, ok := counts[k]; ok {
			out = append(out, k)
		}
	}
	for _, k := range sortedKeys(counts) {
		if !slices.Contains(history.Kinds, k) {
			out = append(out, k)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
