package events

// Certificate types of trust-store entries, as the LXD/Incus API spells them.
const (
	CertificateTypeClient  = "client"
	CertificateTypeServer  = "server"
	CertificateTypeMetrics = "metrics"
)

// CertificateTrusted records that a certificate joined the trust store.
type CertificateTrusted struct {
	// Fingerprint is the lowercase hex SHA-256 of the certificate's DER bytes.
	Fingerprint string `json:"fingerprint"`
	// Name is the entry's name (request name, else subject CN, else client address).
	Name string `json:"name"`
	// Type is "client", "server" or "metrics".
	Type string `json:"type"`
	// Restricted limits the certificate to Projects.
	Restricted bool `json:"restricted"`
	// Projects lists the projects a restricted certificate may use; never nil.
	Projects []string `json:"projects"`
	// Description is free text.
	Description string `json:"description"`
	// Certificate is the PEM encoding of the certificate (public material only).
	Certificate string `json:"certificate"`
}

// EventType implements Payload.
func (CertificateTrusted) EventType() string { return "trustlog.certificate.trusted.v1" }

// EventSubject implements Payload.
func (e CertificateTrusted) EventSubject() string { return certSubject(e.Fingerprint) }

// CertificateUpdated records a new state for an existing trust-store entry.
// It carries every writable field, not a diff, so a reader needs no history.
type CertificateUpdated struct {
	// Fingerprint identifies the entry as it was before the update.
	Fingerprint string `json:"fingerprint"`
	// NewFingerprint is set when the certificate itself was replaced and the
	// entry is re-keyed under the new certificate's fingerprint.
	NewFingerprint string `json:"new_fingerprint,omitempty"`
	// Name, Restricted, Projects, Description and Certificate are the entry's new values.
	Name        string   `json:"name"`
	Restricted  bool     `json:"restricted"`
	Projects    []string `json:"projects"`
	Description string   `json:"description"`
	Certificate string   `json:"certificate"`
}

// EventType implements Payload.
func (CertificateUpdated) EventType() string { return "trustlog.certificate.updated.v1" }

// EventSubject implements Payload.
func (e CertificateUpdated) EventSubject() string { return certSubject(e.Fingerprint) }

// CertificateRemoved records that a certificate left the trust store.
type CertificateRemoved struct {
	// Fingerprint identifies the removed entry.
	Fingerprint string `json:"fingerprint"`
	// Name is the entry's name at removal, kept for readers of the audit trail.
	Name string `json:"name"`
}

// EventType implements Payload.
func (CertificateRemoved) EventType() string { return "trustlog.certificate.removed.v1" }

// EventSubject implements Payload.
func (e CertificateRemoved) EventSubject() string { return certSubject(e.Fingerprint) }

func certSubject(fp string) string { return SubjectPrefix + ".cert." + subjectToken(fp) }
