package check

import (
	"slices"
	"time"

	"github.com/trustlog/trustlog/local/faults/history"
)

// write is an acknowledged or unknown change of a fingerprint's trust: an
// add or redemption (set) or a removal.
type write struct {
	history.Op
	set bool
}

func (w write) ok() bool { return w.Result == history.ResultOK }

// workload is the history's trust operations, by fingerprint.
type workload struct {
	keys   []string                // every fingerprint the workload touched, sorted
	writes map[string][]write      // acknowledged and unknown writes
	reads  map[string][]history.Op // answered reads
	// revoked is, per fingerprint, when the first CRL revoking it that may
	// have taken effect (acknowledged or unknown) was invoked.
	revoked map[string]time.Time
}

func newWorkload(ops []history.Op) *workload {
	w := &workload{writes: map[string][]write{}, reads: map[string][]history.Op{}, revoked: map[string]time.Time{}}
	seen := map[string]bool{}
	touch := func(fp string) {
		if !seen[fp] {
			seen[fp] = true
			w.keys = append(w.keys, fp)
		}
	}
	for _, op := range ops {
		switch op.Kind {
		case history.KindAdd, history.KindRemove, history.KindRedeem:
			fp := op.Key
			if op.Kind == history.KindRedeem {
				fp = op.Value
			}
			touch(fp)
			if op.Result != history.ResultFail {
				w.writes[fp] = append(w.writes[fp], write{Op: op, set: op.Kind != history.KindRemove})
			}
		case history.KindRead:
			touch(op.Key)
			if op.Result == history.ResultOK {
				w.reads[op.Key] = append(w.reads[op.Key], op)
			}
		}
	}
	for fp, crls := range revokingCRLs(ops) {
		for _, op := range crls {
			if at, ok := w.revoked[fp]; op.Result != history.ResultFail && (!ok || op.Invoke.Before(at)) {
				w.revoked[fp] = op.Invoke
			}
		}
	}
	slices.Sort(w.keys)
	return w
}

// expected returns the state fp must end in, whether the history decides
// it, and the acknowledged write that decides it (zero if none did: no
// write of fp was acknowledged).
func (w *workload) expected(fp string) (present, decided bool, by history.Op) {
	ws := w.writes[fp]
	var values []bool
	acked := false
	for _, x := range ws {
		if !x.ok() {
			values = append(values, x.set) // an unknown write may come last
			continue
		}
		acked = true
		followed := false
		for _, y := range ws {
			if y.ok() && y.Invoke.After(x.Complete) {
				followed = true
				break
			}
		}
		if !followed {
			values = append(values, x.set)
			if by.ID == 0 || x.Complete.After(by.Complete) {
				by = x.Op
			}
		}
	}
	if !acked {
		values = append(values, false) // perhaps nothing took effect
	}
	for _, v := range values[1:] {
		if v != values[0] {
			return false, false, history.Op{}
		}
	}
	return values[0], true, by
}

// checkLosses compares every readable final state with the states the
// history decides.
func (r *Report) checkLosses(w *workload, finals []history.Final) {
	var nodes []history.Final
	for _, f := range finals {
		if f.Err == "" {
			nodes = append(nodes, f)
		}
	}
	if len(nodes) == 0 {
		return
	}
	trusted := make([]map[string]bool, len(nodes))
	for i, f := range nodes {
		trusted[i] = map[string]bool{}
		for _, fp := range f.Certificates {
			trusted[i][fp] = true
		}
	}
	for _, fp := range w.keys {
		present, decided, by := w.expected(fp)
		if !decided {
			r.Undetermined++
			continue
		}
		for i, f := range nodes {
			has := trusted[i][fp]
			switch {
			case present && !has:
				r.Lost = append(r.Lost, Loss{Node: f.Node, Kind: LossAdd, Key: fp, Op: by.ID})
			case !present && has && by.ID != 0:
				r.Lost = append(r.Lost, Loss{Node: f.Node, Kind: LossRemove, Key: fp, Op: by.ID})
			case !present && has:
				r.Lost = append(r.Lost, Loss{Node: f.Node, Kind: LossPhantom, Key: fp})
			}
		}
	}
}

// checkRedemptions finds tokens redeemed more than once, and acknowledged
// redemptions missing from final states that record redemptions.
func (r *Report) checkRedemptions(ops []history.Op, finals []history.Final) {
	acked := map[string][]history.Op{}
	tokens := map[string]bool{}
	for _, op := range ops {
		if op.Kind == history.KindRedeem && op.Result == history.ResultOK {
			acked[op.Key] = append(acked[op.Key], op)
			tokens[op.Key] = true
		}
	}
	var observers []history.Final
	for _, f := range finals {
		if f.Err == "" && f.Redeemed != nil {
			observers = append(observers, f)
			for t := range f.Redeemed {
				tokens[t] = true
			}
		}
	}
	for _, t := range sortedKeys(tokens) {
		fps := map[string]bool{}
		var ids []int64
		for _, op := range acked[t] {
			fps[op.Value] = true
			ids = append(ids, op.ID)
		}
		for _, f := range observers {
			fp, ok := f.Redeemed[t]
			if ok {
				fps[fp] = true
			} else if n := len(acked[t]); n > 0 {
				r.Lost = append(r.Lost, Loss{Node: f.Node, Kind: LossRedemption, Key: t, Op: acked[t][n-1].ID})
			}
		}
		if len(ids) > 1 || len(fps) > 1 {
			r.DoubleRedemptions = append(r.DoubleRedemptions, Double{Token: t, Ops: ids, Fingerprints: sortedKeys(fps)})
		}
	}
}

// checkReads finds the answers an earlier acknowledged write contradicts.
func (r *Report) checkReads(w *workload, events []history.Event, bound time.Duration) {
	for _, fp := range w.keys {
		writes := w.writes[fp]
		for _, rd := range w.reads[fp] {
			v := rd.Value == history.ValueTrusted
			if at, ok := w.revoked[fp]; ok && !v && at.Before(rd.Complete) {
				continue // refused as revoked: a CRL explains it
			}
			// The writes of v that can explain the answer: an unknown
			// one invoked before the read completed always can; an
			// acknowledged one unless it definitely precedes the
			// contradicting write.
			var support time.Time
			explained, supported := false, false
			for _, x := range writes {
				if x.set != v || !x.Invoke.Before(rd.Complete) {
					continue
				}
				supported = true
				if !x.ok() {
					explained = true
					break
				}
				if x.Complete.After(support) {
					support = x.Complete
				}
			}
			if explained {
				continue
			}
			if v && !supported {
				// Untrusted from the start, and never added.
				r.UntrustedAdmits = append(r.UntrustedAdmits, Stale{Read: rd.ID, Node: rd.Node, Key: fp})
				continue
			}
			var latest, own *write
			for i := range writes {
				d := &writes[i]
				if d.set == v || !d.ok() || !d.Complete.Before(rd.Invoke) || !support.Before(d.Invoke) {
					continue
				}
				if latest == nil || d.Complete.After(latest.Complete) {
					latest = d
				}
				if d.Node == rd.Node && !restarted(events, d.Node, d.Complete, rd.Invoke) &&
					(own == nil || d.Complete.After(own.Complete)) {
					own = d
				}
			}
			if latest == nil {
				continue
			}
			lag := rd.Invoke.Sub(latest.Complete)
			s := Stale{Read: rd.ID, Node: rd.Node, Key: fp, Write: latest.ID, WriteNode: latest.Node, Lag: Duration(lag)}
			switch {
			case !v:
				r.StaleRefusals++
			case lag > bound:
				r.StaleAdmits = append(r.StaleAdmits, s)
			default:
				r.AdmitsWithinBound++
				r.MaxAdmitLag = max(r.MaxAdmitLag, Duration(lag))
			}
			if own != nil {
				r.ReadYourWrites = append(r.ReadYourWrites, Stale{Read: rd.ID, Node: rd.Node, Key: fp,
					Write: own.ID, WriteNode: own.Node, Lag: Duration(rd.Invoke.Sub(own.Complete))})
			}
		}
	}
}

// restarted reports whether node was restarted between from and to: it is
// then another instance, bound by the staleness bound alone.
func restarted(events []history.Event, node string, from, to time.Time) bool {
	for _, e := range events {
		if e.Kind == history.EventRestart && e.Time.After(from) && e.Time.Before(to) &&
			(len(e.Nodes) == 0 || slices.Contains(e.Nodes, node)) {
			return true
		}
	}
	return false
}
