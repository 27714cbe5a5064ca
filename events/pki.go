package events

import "time"

// CAChanged records the certificate authority of PKI mode. While a CA is
// set, client certificates must be signed by it; an empty Certificate turns
// PKI mode off.
type CAChanged struct {
	// Certificate is the CA certificate in PEM form, or "" for none.
	Certificate string `json:"certificate"`
	// Fingerprint is the CA certificate's SHA-256 fingerprint, or "".
	Fingerprint string `json:"fingerprint"`
}

// EventType implements Payload.
func (CAChanged) EventType() string { return "trustlog.pki.ca.changed.v1" }

// EventSubject implements Payload.
func (CAChanged) EventSubject() string { return SubjectPrefix + ".pki.ca" }

// CRLUpdated records a new certificate revocation list of the CA. A large
// list is carried by this event and the CRLRevocations events appended with
// it in one atomic batch; the new list takes effect once all Parts are in.
type CRLUpdated struct {
	// IssuerFingerprint is the fingerprint of the CA that signed the list.
	IssuerFingerprint string `json:"issuer_fingerprint"`
	// Number is the CRL number extension in decimal, "" if absent.
	Number string `json:"number"`
	// ThisUpdate and NextUpdate are the list's validity window; NextUpdate
	// is zero when the list does not name one.
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	// SHA256 is the hex SHA-256 of the list's DER bytes.
	SHA256 string `json:"sha256"`
	// Total is the number of revoked serials in the whole list.
	Total int `json:"total"`
	// Parts is the number of events carrying serials: this one and Parts-1
	// CRLRevocations events.
	Parts int `json:"parts"`
	// Revoked holds the first part of the revoked serial numbers, each in
	// lowercase hex without leading zeros.
	Revoked []string `json:"revoked"`
}

// EventType implements Payload.
func (CRLUpdated) EventType() string { return "trustlog.pki.crl.updated.v1" }

// EventSubject implements Payload.
func (e CRLUpdated) EventSubject() string { return crlSubject(e.IssuerFingerprint) }

// CRLRevocations carries one further part of the revoked serials of the
// CRLUpdated with the same SHA256.
type CRLRevocations struct {
	IssuerFingerprint string `json:"issuer_fingerprint"`
	SHA256            string `json:"sha256"`
	// Part is this event's index, from 2 to the list's Parts.
	Part    int      `json:"part"`
	Revoked []string `json:"revoked"`
}

// EventType implements Payload.
func (CRLRevocations) EventType() string { return "trustlog.pki.crl.revocations.v1" }

// EventSubject implements Payload.
func (e CRLRevocations) EventSubject() string { return crlSubject(e.IssuerFingerprint) }

func crlSubject(issuer string) string { return SubjectPrefix + ".crl." + subjectToken(issuer) }
