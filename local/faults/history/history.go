// Package history is the record of a fault-injection run: every client
// operation the harness made, every fault it injected and every node's
// state read once the run was over, as one JSON-lines file.
//
// Each line holds one record, tagged with its kind:
//
//	{"op":{"id":7,"client":2,"node":"n1","kind":"remove","key":"3f1c…","invoke":"…","complete":"…","status":200,"result":"ok"}}
//	{"event":{"time":"…","kind":"fault-start","fault":"partition","nodes":["n3"],"detail":"n3 | n1 n2"}}
//	{"final":{"node":"n1","seq":4711,"digest":"9a0e…","certificates":["3f1c…"],"redeemed":{"tok-1":"77ab…"}}}
//
// An operation is written once it has completed, so its invocation and
// completion times are both known; operations still in flight when the
// harness dies are missing. Times are RFC 3339 with nanoseconds, from one
// clock (the harness's). A [Writer] issues one write per record and buffers
// nothing, so a harness that crashes leaves a readable prefix, possibly
// with a truncated last line, which a [Reader] drops (and reports).
//
// # Results
//
// An operation's Result is what the harness knows of its effect:
//
//   - [ResultOK]: the service acknowledged it.
//   - [ResultFail]: it definitely did not take effect. Record it only when
//     the service said so (a 4xx answer; a 503 from the front door, which
//     refuses before deciding anything). Status says which answer it was:
//     the checker reads a 403 to a redemption as "no usable token".
//   - [ResultUnknown]: it may or may not have taken effect, now or later (a
//     timeout, a lost connection, a 5xx from a write in progress).
//
// Recording an ambiguous failure as ResultFail makes the checker report
// violations that did not happen; when in doubt, record ResultUnknown.
package history

import (
	"errors"
	"fmt"
	"time"
)

// Operation kinds (Op.Kind).
const (
	// KindAdd trusts a certificate (POST /1.0/certificates by an
	// administrator). Key is its fingerprint.
	KindAdd = "add"
	// KindRemove removes a certificate from the trust store (DELETE
	// /1.0/certificates/{fingerprint}). Key is its fingerprint.
	KindRemove = "remove"
	// KindIssue issues a trust token. Key and Value are the token's id
	// (its operation id); an issue that did not succeed has no id.
	KindIssue = "issue"
	// KindRedeem redeems a trust token with a certificate, which the
	// redemption trusts. Key is the token id, Value the certificate's
	// fingerprint.
	KindRedeem = "redeem"
	// KindRead is a request authenticated with a certificate. Key is its
	// fingerprint, Value whether it was admitted: ValueTrusted or
	// ValueUntrusted.
	KindRead = "read"
	// KindCRL updates a certificate revocation list. Key is the CRL number.
	KindCRL = "crl"
)

// Kinds lists the operation kinds in the order reports show them.
var Kinds = []string{KindAdd, KindRemove, KindIssue, KindRedeem, KindRead, KindCRL}

// Values of a read (Op.Value of KindRead).
const (
	ValueTrusted   = "trusted"
	ValueUntrusted = "untrusted"
)

// Operation results (Op.Result); see the package documentation.
const (
	ResultOK      = "ok"
	ResultFail    = "fail"
	ResultUnknown = "unknown"
)

// Results lists the results in the order reports show them.
var Results = []string{ResultOK, ResultFail, ResultUnknown}

// Event kinds (Event.Kind).
const (
	// EventFaultStart: a fault of kind Event.Fault began on Event.Nodes.
	EventFaultStart = "fault-start"
	// EventFaultEnd: the fault ended. It closes the oldest open
	// EventFaultStart with the same Fault and Nodes.
	EventFaultEnd = "fault-end"
	// EventHeal: every fault has been undone; the nodes should now
	// converge.
	EventHeal = "heal"
	// EventRestart: the harness started Event.Nodes again.
	EventRestart = "restart"
	// EventConverged: every node reported the same state digest
	// (/1.0/trustlog/audit/state) after the last heal.
	EventConverged = "converged"
)

// Fault kinds (Event.Fault). The checker counts whatever kinds a history
// names; these are the harness's.
const (
	FaultKill      = "kill"       // SIGKILL, then restart
	FaultPause     = "pause"      // SIGSTOP, then SIGCONT
	FaultPartition = "partition"  // network partition between nodes
	FaultPowerLoss = "power-loss" // unsynced writes dropped, then restart
	FaultCorrupt   = "corrupt"    // block files damaged while the node was down
)

// Op is one client operation.
type Op struct {
	// ID is unique within the history.
	ID int64 `json:"id"`
	// Client is the worker that made the operation; a worker makes one
	// operation at a time.
	Client int `json:"client"`
	// Node is the node the request went to ("n1", …).
	Node string `json:"node"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Key names what the operation is about: a fingerprint (add, remove,
	// read), a token id (issue, redeem) or a CRL number.
	Key string `json:"key"`
	// Value is a read's answer, a redemption's certificate fingerprint or
	// an issued token's id.
	Value string `json:"value,omitempty"`
	// Invoke is when the request was sent, Complete when its answer
	// arrived or the harness gave up on it.
	Invoke   time.Time `json:"invoke"`
	Complete time.Time `json:"complete"`
	// Status is the HTTP status of the answer, 0 without one.
	Status int `json:"status,omitempty"`
	// Result is one of the Result constants.
	Result string `json:"result"`
	// Error is the failure's description, for people.
	Error string `json:"error,omitempty"`
}

// Validate reports an operation the checker could not interpret.
func (o Op) Validate() error {
	switch o.Kind {
	case KindAdd, KindRemove, KindIssue, KindRedeem, KindRead, KindCRL:
	default:
		return fmt.Errorf("history: op %d: unknown kind %q", o.ID, o.Kind)
	}
	switch o.Result {
	case ResultOK, ResultFail, ResultUnknown:
	default:
		return fmt.Errorf("history: op %d: unknown result %q", o.ID, o.Result)
	}
	if o.Complete.Before(o.Invoke) {
		return fmt.Errorf("history: op %d: completes before it is invoked", o.ID)
	}
	if o.Key == "" && (o.Result == ResultOK || o.Kind != KindIssue) {
		return fmt.Errorf("history: op %d: %s without a key", o.ID, o.Kind)
	}
	if o.Kind == KindRead && o.Result == ResultOK && o.Value != ValueTrusted && o.Value != ValueUntrusted {
		return fmt.Errorf("history: op %d: read answered %q, want %q or %q", o.ID, o.Value, ValueTrusted, ValueUntrusted)
	}
	if o.Kind == KindRedeem && o.Value == "" {
		return fmt.Errorf("history: op %d: redeem without the certificate's fingerprint", o.ID)
	}
	return nil
}

// Event is something the harness did or saw.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is one of the Event constants.
	Kind string `json:"kind"`
	// Fault is the kind of fault of a fault-start or fault-end event.
	Fault string `json:"fault,omitempty"`
	// Nodes are the nodes concerned; none means all.
	Nodes []string `json:"nodes,omitempty"`
	// Detail is free text for people (a partition's sides, a digest).
	Detail string `json:"detail,omitempty"`
}

// Validate reports an event the checker could not interpret.
func (e Event) Validate() error {
	if e.Kind == "" {
		return errors.New("history: event without a kind")
	}
	if (e.Kind == EventFaultStart || e.Kind == EventFaultEnd) && e.Fault == "" {
		return fmt.Errorf("history: %s event without a fault kind", e.Kind)
	}
	return nil
}

// Final is one node's state, read after the run once every fault was
// healed.
type Final struct {
	Node string `json:"node"`
	// Seq and Digest are the node's applied sequence and state digest
	// (/1.0/trustlog/audit/state).
	Seq    uint64 `json:"seq"`
	Digest string `json:"digest"`
	// Certificates are the fingerprints the node trusts.
	Certificates []string `json:"certificates"`
	// Redeemed maps each redeemed token's id to the fingerprint that
	// redeemed it. Nil (JSON null) means the harness could not observe
	// redemptions; an empty map means it saw none.
	Redeemed map[string]string `json:"redeemed"`
	// Err says why the node's state could not be read (the node refused
	// to serve, say). The other fields are then empty.
	Err string `json:"error,omitempty"`
}

// Record is one line of a history: exactly one of its fields is set.
type Record struct {
	Op    *Op    `json:"op,omitempty"`
	Event *Event `json:"event,omitempty"`
	Final *Final `json:"final,omitempty"`
}

// count returns how many of the record's fields are set.
func (r Record) count() int {
	n := 0
	if r.Op != nil {
		n++
	}
	if r.Event != nil {
		n++
	}
	if r.Final != nil {
		n++
	}
	return n
}

// History is a whole history, in file order.
type History struct {
	Ops    []Op
	Events []Event
	Finals []Final
	// Truncated reports that the last line was cut short and dropped.
	Truncated bool
}
