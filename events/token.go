package events

import "time"

// TokenIssued records a trust token: an admin's permission for one new
// client to add its certificate. The secret itself never appears: SecretHash
// finds the token at redemption, and SealedSecret (AES-256-GCM under the
// service key, which lives outside the log) lets an admin list the token
// again.
type TokenIssued struct {
	// ID is the token's operation id (a UUID).
	ID string `json:"id"`
	// Name, Type, Restricted, Projects and Description describe the trust
	// entry the token creates; they win over anything the redeemer sends.
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Restricted  bool     `json:"restricted"`
	Projects    []string `json:"projects"`
	Description string   `json:"description"`
	// SecretHash is the lowercase hex SHA-256 of the secret's text.
	SecretHash string `json:"secret_sha256"`
	// SealedSecret is base64 of nonce‖ciphertext‖tag of the secret under the
	// service key, with the token id as additional data.
	SealedSecret string `json:"sealed_secret"`
	// Fingerprint is the server certificate's fingerprint at issue time.
	Fingerprint string `json:"fingerprint"`
	// Addresses are the "host:port" addresses the client should try.
	Addresses []string `json:"addresses"`
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time `json:"expires_at"`
	// IdentityID, if set, makes this the token of a pending TLS identity
	// (IdentityCreated): it activates that identity and cannot add a
	// certificate to the trust store.
	IdentityID string `json:"identity_id,omitempty"`
}

// EventType implements Payload.
func (TokenIssued) EventType() string { return "trustlog.token.issued.v1" }

// EventSubject implements Payload.
func (e TokenIssued) EventSubject() string { return tokenSubject(e.ID) }

// TokenRedeemed records that a token was used, and by which certificate.
// It is appended together with the CertificateTrusted it causes.
type TokenRedeemed struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Fingerprint is the certificate the token let in.
	Fingerprint string `json:"fingerprint"`
}

// EventType implements Payload.
func (TokenRedeemed) EventType() string { return "trustlog.token.redeemed.v1" }

// EventSubject implements Payload.
func (e TokenRedeemed) EventSubject() string { return tokenSubject(e.ID) }

// TokenRevoked records that an admin cancelled a pending token.
type TokenRevoked struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// EventType implements Payload.
func (TokenRevoked) EventType() string { return "trustlog.token.revoked.v1" }

// EventSubject implements Payload.
func (e TokenRevoked) EventSubject() string { return tokenSubject(e.ID) }

// TokenExpired records that a token passed its expiry unused: found by the
// sweeper, or presented too late.
type TokenExpired struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// EventType implements Payload.
func (TokenExpired) EventType() string { return "trustlog.token.expired.v1" }

// EventSubject implements Payload.
func (e TokenExpired) EventSubject() string { return tokenSubject(e.ID) }

func tokenSubject(id string) string { return SubjectPrefix + ".token." + subjectToken(id) }
