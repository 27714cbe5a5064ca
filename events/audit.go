package events

import "time"

// Kinds of refused attempts recorded by AccessDenied.
const (
	// DeniedRedemption is a trust token that did not let a client in
	// (unknown, used, expired, or a certificate PKI mode refuses).
	DeniedRedemption = "token-redemption"
	// DeniedAdmin is a change (PUT, PATCH, POST, DELETE) refused to a
	// caller without the access it needs.
	DeniedAdmin = "admin"
	// DeniedOverflow counts attempts from more callers than one flush
	// records one by one.
	DeniedOverflow = "overflow"
)

// AccessDenied records refused attempts, aggregated: one event per kind,
// caller and route per flush window (a minute by default), with the count,
// so a flood of attempts cannot fill the log. It never carries what the
// caller sent (no token text).
type AccessDenied struct {
	Kind string `json:"kind"`
	// ActorName is the caller's certificate fingerprint or user name ("" if
	// none); ActorMethod how it authenticated ("untrusted" if it did not).
	ActorName   string `json:"actor_name"`
	ActorMethod string `json:"actor_method"`
	Address     string `json:"address"`
	// Route is the API route refused, such as "POST /1.0/certificates".
	Route string `json:"route"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	Count  int `json:"count"`
	// First and Last bound the attempts counted.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// EventType implements Payload.
func (AccessDenied) EventType() string { return "trustlog.audit.denied.v1" }

// EventSubject implements Payload.
func (e AccessDenied) EventSubject() string {
	return SubjectPrefix + ".audit.denied." + subjectToken(e.Kind)
}
