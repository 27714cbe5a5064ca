package events

// Authentication methods of identities.
const (
	// IdentityOIDC is a user of the configured OpenID Connect issuer.
	IdentityOIDC = "oidc"
	// IdentityTLS is a client certificate managed as an identity (LXD's
	// fine-grained TLS identities), outside the certificate trust store.
	IdentityTLS = "tls"
)

// Access levels an identity can be granted.
const (
	// AccessNone gives nothing beyond GET /1.0.
	AccessNone = "none"
	// AccessAdmin gives full access, like an unrestricted client certificate.
	AccessAdmin = "admin"
	// AccessRestricted gives what a certificate restricted to Projects has.
	AccessRestricted = "restricted"
)

// IdentityCreated records a new identity. An OIDC identity is recorded on
// the first authenticated request of its user and starts without a grant,
// so oidc.default_access decides what it may do until an administrator
// grants it something. An administrator may also create an OIDC identity
// ahead of the first login, by user name and without Issuer and Subject:
// it is pending, and the user's first login replaces it, grant included.
// A TLS identity starts pending: it names the trust token (TokenIssued
// with the same IdentityID) that activates it.
type IdentityCreated struct {
	// ID identifies the identity: for OIDC the hex of the first 16 bytes of
	// SHA-256(issuer ‖ 0x00 ‖ subject), so a user maps to one identity per
	// issuer; for TLS a UUID.
	ID string `json:"id"`
	// AuthMethod is IdentityOIDC or IdentityTLS.
	AuthMethod string `json:"auth_method"`
	// Name is the user name (OIDC: from oidc.claim, email or sub) or the
	// name an administrator gave a TLS identity.
	Name string `json:"name"`
	// Issuer and Subject are the OIDC issuer and the token's sub claim.
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Access and Projects are the initial grant; "" means no grant yet.
	Access   string   `json:"access,omitempty"`
	Projects []string `json:"projects,omitempty"`
}

// EventType implements Payload.
func (IdentityCreated) EventType() string { return "trustlog.identity.created.v1" }

// EventSubject implements Payload.
func (e IdentityCreated) EventSubject() string { return identitySubject(e.ID) }

// IdentityGranted records an administrator's decision on what an identity
// may do. It replaces any earlier grant; AccessNone withdraws access even
// where oidc.default_access would give some.
type IdentityGranted struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Access   string   `json:"access"`
	Projects []string `json:"projects"`
}

// EventType implements Payload.
func (IdentityGranted) EventType() string { return "trustlog.identity.granted.v1" }

// EventSubject implements Payload.
func (e IdentityGranted) EventSubject() string { return identitySubject(e.ID) }

// IdentityActivated records that a pending TLS identity's token was redeemed
// by a client certificate, which from then on authenticates the identity.
// It is appended together with the TokenRedeemed.
type IdentityActivated struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Fingerprint is the lowercase hex SHA-256 of Certificate's DER bytes.
	Fingerprint string `json:"fingerprint"`
	// Certificate is the PEM of the client certificate.
	Certificate string `json:"certificate"`
}

// EventType implements Payload.
func (IdentityActivated) EventType() string { return "trustlog.identity.activated.v1" }

// EventSubject implements Payload.
func (e IdentityActivated) EventSubject() string { return identitySubject(e.ID) }

// IdentityRemoved records that an administrator deleted an identity. An
// OIDC user who comes back is recorded again, without the old grant.
type IdentityRemoved struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// EventType implements Payload.
func (IdentityRemoved) EventType() string { return "trustlog.identity.removed.v1" }

// EventSubject implements Payload.
func (e IdentityRemoved) EventSubject() string { return identitySubject(e.ID) }

func identitySubject(id string) string { return SubjectPrefix + ".identity." + subjectToken(id) }
