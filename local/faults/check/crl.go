package check

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustlog/trustlog/local/faults/history"
)

// checkRevocations finds admitted reads of revoked certificates. The
// workload's CRLs are cumulative (each keeps every revocation of the ones
// numbered below it, so a revocation is never undone), and a CRL
// operation's Value lists, comma-separated, the fingerprints it revokes
// that no lower-numbered CRL did: CRL k revokes everything listed by the
// CRLs numbered up to k. A read answered "trusted" that was invoked more
// than the bound after an acknowledged CRL revoking its certificate
// completed is a revoked admit, a violation; within the bound it is
// counted as information. An unknown CRL never counts against a read: it
// may not have taken effect.
func (r *Report) checkRevocations(ops []history.Op, bound time.Duration) {
	revokedAt := map[string]history.Op{} // fingerprint → earliest acknowledged CRL revoking it
	for fp, crls := range revokingCRLs(ops) {
		for _, op := range crls {
			if op.Result != history.ResultOK {
				continue
			}
			if was, ok := revokedAt[fp]; !ok || op.Complete.Before(was.Complete) {
				revokedAt[fp] = op
			}
		}
	}
	for _, rd := range ops {
		if rd.Kind != history.KindRead || rd.Result != history.ResultOK || rd.Value != history.ValueTrusted {
			continue
		}
		crl, ok := revokedAt[rd.Key]
		if !ok || !crl.Complete.Before(rd.Invoke) {
			continue
		}
		lag := rd.Invoke.Sub(crl.Complete)
		if lag > bound {
			r.RevokedAdmits = append(r.RevokedAdmits, Stale{Read: rd.ID, Node: rd.Node, Key: rd.Key, Write: crl.ID, WriteNode: crl.Node, Lag: Duration(lag)})
		} else {
			r.RevokedWithinBound++
		}
	}
}

// revokingCRLs returns, for each revoked fingerprint, the CRL operations
// (of any result) that revoke it: the one that lists it first and every
// one numbered above it.
func revokingCRLs(ops []history.Op) map[string][]history.Op {
	var crls []history.Op
	for _, op := range ops {
		if op.Kind == history.KindCRL {
			crls = append(crls, op)
		}
	}
	number := func(op history.Op) int64 {
		n, _ := strconv.ParseInt(op.Key, 10, 64)
		return n
	}
	slices.SortStableFunc(crls, func(a, b history.Op) int { return cmp.Compare(number(a), number(b)) })
	firstListed := map[string]int64{}
	for _, op := range crls {
		for _, fp := range strings.Split(op.Value, ",") {
			if _, ok := firstListed[fp]; fp != "" && !ok {
				firstListed[fp] = number(op)
			}
		}
	}
	out := map[string][]history.Op{}
	for fp, from := range firstListed {
		for _, op := range crls {
			if number(op) >= from {
				out[fp] = append(out[fp], op)
			}
		}
	}
	return out
}
