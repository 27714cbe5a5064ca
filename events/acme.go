package events

import "time"

// ACMEChallengePresented records the answer to an ACME HTTP-01 challenge,
// so that every instance can serve GET /.well-known/acme-challenge/<token>
// whichever one the CA's validation reaches. The key authorization is
// public by design (the CA fetches it over plain HTTP); it proves control of
// the domain for one order only and reveals no key.
type ACMEChallengePresented struct {
	Domain  string `json:"domain"`
	Token   string `json:"token"`
	KeyAuth string `json:"key_authorization"`
}

// EventType implements Payload.
func (ACMEChallengePresented) EventType() string { return "trustlog.acme.challenge.presented.v1" }

// EventSubject implements Payload.
func (e ACMEChallengePresented) EventSubject() string {
	return SubjectPrefix + ".acme.challenge." + subjectToken(e.Token)
}

// ACMEChallengeCleaned records that a challenge is over; its answer is no
// longer served.
type ACMEChallengeCleaned struct {
	Domain string `json:"domain"`
	Token  string `json:"token"`
}

// EventType implements Payload.
func (ACMEChallengeCleaned) EventType() string { return "trustlog.acme.challenge.cleaned.v1" }

// EventSubject implements Payload.
func (e ACMEChallengeCleaned) EventSubject() string {
	return SubjectPrefix + ".acme.challenge." + subjectToken(e.Token)
}

// ServerCertificateRotated records a new served certificate: the public
// chain only (leaf first). The private key stays in the data directory of
// the instance that holds it and never enters the log.
type ServerCertificateRotated struct {
	// Fingerprint is the leaf's lowercase hex SHA-256.
	Fingerprint string `json:"fingerprint"`
	// Chain is the PEM chain, leaf first.
	Chain    string    `json:"chain"`
	Domains  []string  `json:"domains"`
	NotAfter time.Time `json:"not_after"`
	// Source says where it came from: "acme" or "generated".
	Source string `json:"source"`
}

// EventType implements Payload.
func (ServerCertificateRotated) EventType() string { return "trustlog.server.certificate.rotated.v1" }

// EventSubject implements Payload.
func (ServerCertificateRotated) EventSubject() string { return SubjectPrefix + ".server.certificate" }

// Outcomes of an ACME renewal.
const (
	RenewalScheduled = "scheduled"
	RenewalSucceeded = "succeeded"
	RenewalFailed    = "failed"
)

// ACMERenewal records a step of a certificate renewal: scheduled (with
// why; it also tells other instances one is under way), then succeeded or
// failed (with the error and when the next attempt is due).
type ACMERenewal struct {
	Outcome string   `json:"outcome"`
	Domains []string `json:"domains"`
	// Reason says why a renewal was scheduled: "no certificate", "domains
	// changed", "two thirds of the validity passed", "requested".
	Reason string `json:"reason,omitempty"`
	// Error is the failure, without secrets.
	Error string `json:"error,omitempty"`
	// NextAttempt is when a failed renewal is tried again.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Instance is the source of the instance doing it.
	Instance string `json:"instance"`
}

// EventType implements Payload.
func (ACMERenewal) EventType() string { return "trustlog.acme.renewal.v1" }

// EventSubject implements Payload.
func (ACMERenewal) EventSubject() string { return SubjectPrefix + ".acme.renewal" }
