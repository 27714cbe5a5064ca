package check

import (
	"strings"
	"time"

	"github.com/trustlog/trustlog/local/faults/history"
)

// checkRevocations finds admitted reads of revoked certificates. A CRL
// operation's Value lists, comma-separated, every fingerprint the CRL
// revokes (the workload's CRLs are cumulative: a later one keeps every
// earlier revocation, so a revocation is never undone). A read answered
// "trusted" that was invoked more than the bound after an acknowledged
// CRL revoking its certificate completed is a revoked admit, a violation;
// within the bound it is counted as information. An unknown CRL never
// counts against a read: it may not have taken effect.
func (r *Report) checkRevocations(ops []history.Op, bound time.Duration) {
	revokedAt := map[string]history.Op{} // fingerprint → earliest acknowledged CRL revoking it
	for _, op := range ops {
		if op.Kind != history.KindCRL || op.Result != history.ResultOK {
			continue
		}
		for _, fp := range strings.Split(op.Value, ",") {
			if fp == "" {
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
