package check

import (
	"fmt"
	"math"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/trustlog/trustlog/local/faults/history"
)

// never is the return time of an unknown operation: porcupine may then
// linearize it at any moment after its call, or after everything else,
// which is the same as never.
const never = math.MaxInt64

// Outputs of operations in the models.
const (
	outOK      = "ok"
	outRefused = "refused"
	outUnknown = "unknown"
)

// input is a model operation's input.
type input struct {
	kind string // a history kind
	key  string // the partition: token id or fingerprint
	fp   string // a redemption's certificate
}

// meta is what the visualization shows of an operation's origin.
type meta struct {
	id   int64
	node string
}

func (m meta) String() string { return fmt.Sprintf("op %d on %s", m.id, m.node) }

// model is a porcupine model with the operations it checks.
type model struct {
	name string
	pm   porcupine.Model
	ops  []porcupine.Operation
}

// clock maps history times to porcupine's integers: nanoseconds since the
// first invocation.
type clock time.Time

func newClock(ops []history.Op) clock {
	var t0 time.Time
	for _, op := range ops {
		if t0.IsZero() || op.Invoke.Before(t0) {
			t0 = op.Invoke
		}
	}
	return clock(t0)
}

func (c clock) at(t time.Time) int64 { return int64(t.Sub(time.Time(c))) }

// operation converts op, its call moved shift earlier: an answer a node
// gives from its projection may reflect any state from the staleness bound
// before its invocation on. Unknown operations never return.
func (c clock) operation(op history.Op, in input, out string, shift time.Duration) porcupine.Operation {
	call, ret := c.at(op.Invoke)-int64(shift), c.at(op.Complete)
	if out == outUnknown {
		ret = never
	}
	return porcupine.Operation{ClientId: op.Client, Input: in, Call: call, Output: out, Return: ret,
		Metadata: meta{op.ID, op.Node}}
}

// partition groups operations by key, in order of first appearance.
func partition(ops []porcupine.Operation) [][]porcupine.Operation {
	index := map[string]int{}
	var parts [][]porcupine.Operation
	for _, op := range ops {
		k := op.Input.(input).key
		i, ok := index[k]
		if !ok {
			i = len(parts)
			index[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

// tokenState is one token: whether it was issued, and the fingerprint
// that redeemed it.
type tokenState struct {
	issued bool
	by     string
}

// tokenModel checks token redemption, one register per token id.
func tokenModel(ops []history.Op, bound time.Duration) *model {
	m := &model{name: "tokens"}
	c := newClock(ops)
	for _, op := range ops {
		switch {
		case op.Kind == history.KindIssue && op.Result == history.ResultOK:
			m.ops = append(m.ops, c.operation(op, input{kind: op.Kind, key: op.Key}, outOK, 0))
		case op.Kind == history.KindRedeem && op.Result == history.ResultFail && op.Status == 403:
			m.ops = append(m.ops, c.operation(op, input{kind: op.Kind, key: op.Key, fp: op.Value}, outRefused, bound))
		case op.Kind == history.KindRedeem && op.Result != history.ResultFail:
			m.ops = append(m.ops, c.operation(op, input{kind: op.Kind, key: op.Key, fp: op.Value}, op.Result, 0))
		}
	}
	m.pm = porcupine.Model{
		Partition: partition,
		Init:      func() any { return tokenState{} },
		Step: func(state, in, out any) (bool, any) {
			s, i, o := state.(tokenState), in.(input), out.(string)
			if i.kind == history.KindIssue {
				return !s.issued, tokenState{issued: true}
			}
			usable := s.issued && s.by == ""
			switch o {
			case outOK:
				return usable, tokenState{issued: true, by: i.fp}
			case outRefused:
				return !usable, s
			}
			if usable { // unknown: took effect here (or never: see never)
				return true, tokenState{issued: true, by: i.fp}
			}
			return true, s
		},
		DescribeOperation: func(in, out any) string {
			i := in.(input)
			if i.kind == history.KindIssue {
				return "issue → " + out.(string)
			}
			return fmt.Sprintf("redeem(%s) → %s", abbrev(i.fp), out)
		},
		DescribeState: func(state any) string {
			s := state.(tokenState)
			switch {
			case !s.issued:
				return "absent"
			case s.by == "":
				return "issued"
			}
			return "redeemed by " + abbrev(s.by)
		},
	}
	return m
}

// trustModel checks acknowledged and unknown trust changes, one register
// per fingerprint. Reads are judged by checkReads instead (see the package
// documentation).
func trustModel(ops []history.Op) *model {
	m := &model{name: "trust"}
	c := newClock(ops)
	for _, op := range ops {
		switch {
		case op.Result == history.ResultFail:
		case op.Kind == history.KindAdd || op.Kind == history.KindRemove:
			m.ops = append(m.ops, c.operation(op, input{kind: op.Kind, key: op.Key}, op.Result, 0))
		case op.Kind == history.KindRedeem:
			m.ops = append(m.ops, c.operation(op, input{kind: history.KindAdd, key: op.Value}, op.Result, 0))
		}
	}
	m.pm = porcupine.Model{
		Partition: partition,
		Init:      func() any { return false },
		Step: func(state, in, out any) (bool, any) {
			s, i, o := state.(bool), in.(input), out.(string)
			if i.kind == history.KindAdd {
				return o == outUnknown || !s, true
			}
			return o == outUnknown || s, false
		},
		DescribeOperation: func(in, out any) string {
			return fmt.Sprintf("%s → %s", in.(input).kind, out)
		},
		DescribeState: func(state any) string {
			if state.(bool) {
				return "trusted"
			}
			return "untrusted"
		},
	}
	return m
}

func abbrev(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

// check runs porcupine on the whole model, then, if that fails, on each
// key alone to name the failing ones, and visualizes the illegal keys.
func (m *model) check(cfg Config) (Linearizability, error) {
	parts := partition(m.ops)
	l := Linearizability{Model: m.name, Keys: len(parts), Ops: len(m.ops), Result: ResultOK}
	res := porcupine.CheckOperationsTimeout(m.pm, m.ops, cfg.Timeout)
	if res == porcupine.Ok {
		return l, nil
	}
	l.Result = ResultTimeout
	if res == porcupine.Illegal {
		l.Result = ResultIllegal
	}
	var illegal []porcupine.Operation
	deadline := time.Now().Add(4 * cfg.Timeout)
	for _, part := range parts {
		if len(l.IllegalKeys) == maxBadKeys || time.Now().After(deadline) {
			break
		}
		key := part[0].Input.(input).key
		switch porcupine.CheckOperationsTimeout(m.pm, part, cfg.Timeout) {
		case porcupine.Illegal:
			l.IllegalKeys = append(l.IllegalKeys, key)
			illegal = append(illegal, part...)
		case porcupine.Unknown:
			if len(l.TimedOutKeys) < maxBadKeys {
				l.TimedOutKeys = append(l.TimedOutKeys, key)
			}
		}
	}
	if len(illegal) > 0 {
		l.Result = ResultIllegal
		if cfg.VisualizePrefix != "" {
			_, info := porcupine.CheckOperationsVerbose(m.pm, illegal, cfg.Timeout)
			path := cfg.VisualizePrefix + "-" + m.name + ".html"
			if err := porcupine.VisualizePath(m.pm, info, path); err != nil {
				return l, fmt.Errorf("check: %w", err)
			}
			l.Visualization = path
		}
	}
	return l, nil
}
