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
// caller and route per flush window (a minute by default), with the count.
// It never carries what the caller sent (no token text). Since
// AccessDeniedSummary (v2) Trustlog no longer writes it: up to 257 of them
// per window let anonymous callers grow the log by hundreds of megabytes a
// day. Stored ones still decode.
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

// AccessDeniedSummary records every refused attempt an instance counted over
// one flush window (a minute by default) in one event: the callers with the
// most attempts one by one, most first, and the attempts of the rest summed
// in Others. The writer bounds the list and the length of its fields, so
// whatever callers send, an instance appends at most one such event per
// window and its size stays bounded (package denials: 16 KiB with its
// envelope). It never carries what the caller sent (no token text).
type AccessDeniedSummary struct {
	// First and Last bound the attempts counted.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Count is the number of attempts: those of Callers plus Others.
	Count int `json:"count"`
	// Callers lists callers with their attempts, the most first.
	Callers []DeniedCaller `json:"callers"`
	// Others is the number of attempts of callers not listed.
	Others int `json:"others"`
}

// DeniedCaller is one caller's refused attempts of one kind on one route
// within an AccessDeniedSummary's window.
type DeniedCaller struct {
	// Kind is DeniedRedemption or DeniedAdmin.
	Kind string `json:"kind"`
	// ActorName is the caller's certificate fingerprint or user name ("" if
	// none); ActorMethod how it authenticated ("untrusted" if it did not).
	// Long values are cut, ending in "…".
	ActorName   string `json:"actor_name"`
	ActorMethod string `json:"actor_method"`
	Address     string `json:"address"`
	// Route is the API route refused, such as "POST /1.0/certificates".
	Route string `json:"route"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	Count  int `json:"count"`
	// First and Last bound this caller's attempts.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// EventType implements Payload.
func (AccessDeniedSummary) EventType() string { return "trustlog.audit.denied.v2" }

// EventSubject implements Payload.
func (AccessDeniedSummary) EventSubject() string { return SubjectPrefix + ".audit.denied.summary" }
