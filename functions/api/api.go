// Package api defines the JSON shapes of Trustlog's REST API, which is
// wire-compatible with the LXD and Incus 1.0 API: the response envelope,
// the server object and the certificate objects. Both the server functions
// and the trustlog CLI use these types.
package api

import (
	"encoding/json"
	"strings"
	"time"
)

// Response types and statuses of the envelope.
const (
	TypeSync  = "sync"
	TypeAsync = "async"
	TypeError = "error"
)

// Response is the envelope of every /1.0 reply. Every key is always
// present, in this order.
type Response struct {
	Type       string          `json:"type"`
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Operation  string          `json:"operation"`
	ErrorCode  int             `json:"error_code"`
	Error      string          `json:"error"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Server is the /1.0 object. Fields after Public are present only for a
// trusted caller (Environment is nil otherwise).
type Server struct {
	Config        map[string]string `json:"config"`
	APIExtensions []string          `json:"api_extensions"`
	APIStatus     string            `json:"api_status"`
	APIVersion    string            `json:"api_version"`
	Auth          string            `json:"auth"`
	Public        bool              `json:"public"`
	AuthMethods   []string          `json:"auth_methods"`
	// ClientCertificate is LXD's flag: the TLS peer presented a certificate.
	ClientCertificate bool `json:"client_certificate"`

	AuthUserName   string             `json:"auth_user_name,omitempty"`
	AuthUserMethod string             `json:"auth_user_method,omitempty"`
	Environment    *ServerEnvironment `json:"environment,omitempty"`
}

// ServerPut is the body of PUT and PATCH /1.0.
type ServerPut struct {
	Config map[string]string `json:"config"`
}

// ServerEnvironment describes the server to a trusted caller. Trustlog is an
// authentication service, so the container-related fields are empty.
type ServerEnvironment struct {
	Addresses               []string          `json:"addresses"`
	Architectures           []string          `json:"architectures"`
	Certificate             string            `json:"certificate"`
	CertificateFingerprint  string            `json:"certificate_fingerprint"`
	Driver                  string            `json:"driver"`
	DriverVersion           string            `json:"driver_version"`
	Firewall                string            `json:"firewall"`
	Kernel                  string            `json:"kernel"`
	KernelArchitecture      string            `json:"kernel_architecture"`
	KernelFeatures          map[string]string `json:"kernel_features"`
	KernelVersion           string            `json:"kernel_version"`
	LXCFeatures             map[string]string `json:"lxc_features"`
	OSName                  string            `json:"os_name"`
	OSVersion               string            `json:"os_version"`
	Project                 string            `json:"project"`
	Server                  string            `json:"server"`
	ServerClustered         bool              `json:"server_clustered"`
	ServerEventMode         string            `json:"server_event_mode"`
	ServerName              string            `json:"server_name"`
	ServerPid               int               `json:"server_pid"`
	ServerVersion           string            `json:"server_version"`
	Storage                 string            `json:"storage"`
	StorageVersion          string            `json:"storage_version"`
	StorageSupportedDrivers []StorageDriver   `json:"storage_supported_drivers"`
}

// StorageDriver is an element of ServerEnvironment.StorageSupportedDrivers;
// its keys are capitalised on the wire, as upstream.
type StorageDriver struct {
	Name    string `json:"Name"`
	Version string `json:"Version"`
	Remote  bool   `json:"Remote"`
}

// Certificate is a trust-store entry as GET returns it.
type Certificate struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Restricted  bool     `json:"restricted"`
	Projects    []string `json:"projects"`
	Certificate string   `json:"certificate"`
	Description string   `json:"description"`
	Fingerprint string   `json:"fingerprint"`
}

// Writable returns the fields PUT accepts.
func (c Certificate) Writable() CertificatePut {
	return CertificatePut{Name: c.Name, Type: c.Type, Restricted: c.Restricted, Projects: c.Projects, Certificate: c.Certificate, Description: c.Description}
}

// CertificatePut is the body of PUT and PATCH /1.0/certificates/{fingerprint}.
type CertificatePut struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Restricted  bool     `json:"restricted"`
	Projects    []string `json:"projects"`
	Certificate string   `json:"certificate"`
	Description string   `json:"description"`
}

// CertificatesPost is the body of POST /1.0/certificates. Certificate is
// base64 DER or PEM; Token asks for a trust token; TrustToken redeems one.
type CertificatesPost struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Restricted  bool     `json:"restricted"`
	Projects    []string `json:"projects"`
	Certificate string   `json:"certificate"`
	Description string   `json:"description"`
	Password    string   `json:"password,omitempty"`
	TrustToken  string   `json:"trust_token"`
	Token       bool     `json:"token"`
}

// Operation is an asynchronous operation; trust tokens are operations of
// class "token".
type Operation struct {
	ID          string              `json:"id"`
	Class       string              `json:"class"`
	Description string              `json:"description"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
	Status      string              `json:"status"`
	StatusCode  int                 `json:"status_code"`
	Resources   map[string][]string `json:"resources"`
	Metadata    map[string]any      `json:"metadata"`
	MayCancel   bool                `json:"may_cancel"`
	Err         string              `json:"err"`
	Location    string              `json:"location"`
}

// Identity is an entry of /1.0/auth/identities (LXD's identities API),
// with Trustlog's grant model: Access and Projects say what the identity
// may do. Groups is always empty (Trustlog has no groups).
type Identity struct {
	AuthenticationMethod string   `json:"authentication_method" yaml:"authentication_method"`
	Type                 string   `json:"type" yaml:"type"`
	ID                   string   `json:"id" yaml:"id"`
	Name                 string   `json:"name" yaml:"name"`
	Groups               []string `json:"groups" yaml:"groups"`
	TLSCertificate       string   `json:"tls_certificate" yaml:"tls_certificate"`
	// Access is the effective access: "admin", "restricted" or "none".
	Access string `json:"access" yaml:"access"`
	// AccessSource is "grant" (an administrator's) or "default".
	AccessSource string   `json:"access_source" yaml:"access_source"`
	Projects     []string `json:"projects" yaml:"projects"`
	Issuer       string   `json:"issuer,omitempty" yaml:"issuer,omitempty"`
	Subject      string   `json:"subject,omitempty" yaml:"subject,omitempty"`
}

// IdentityInfo is GET /1.0/auth/identities/current: the caller as the
// server sees it, with why its access is what it is.
type IdentityInfo struct {
	Identity `yaml:",inline"`
	// Method is how this request authenticated (auth_user_method).
	Method string `json:"auth_user_method" yaml:"auth_user_method"`
	// Recorded is false for a caller that is not a recorded identity (a
	// certificate in the trust store, the unix socket).
	Recorded             bool     `json:"recorded" yaml:"recorded"`
	EffectiveGroups      []string `json:"effective_groups" yaml:"effective_groups"`
	EffectivePermissions []any    `json:"effective_permissions" yaml:"effective_permissions"`
	FineGrained          bool     `json:"fine_grained" yaml:"fine_grained"`
	// Explanation lists, in order, the facts that decided access.
	Explanation []string `json:"explanation" yaml:"explanation"`
}

// IdentityPut grants an identity access (PUT/PATCH
// /1.0/auth/identities/{method}/{id}).
type IdentityPut struct {
	// Access is "admin", "restricted" (with Projects) or "none".
	Access   string   `json:"access" yaml:"access"`
	Projects []string `json:"projects" yaml:"projects"`
	// Groups is accepted for LXD compatibility and must be empty.
	Groups []string `json:"groups,omitempty" yaml:"groups,omitempty"`
}

// IdentitiesTLSPost creates a pending TLS identity (token true) or, with
// TrustToken, activates one with the caller's certificate (LXD's
// POST /1.0/auth/identities/tls).
type IdentitiesTLSPost struct {
	Name        string   `json:"name" yaml:"name"`
	TrustToken  string   `json:"trust_token" yaml:"trust_token"`
	Token       bool     `json:"token" yaml:"token"`
	Certificate string   `json:"certificate" yaml:"certificate"`
	Groups      []string `json:"groups" yaml:"groups"`
	// Access and Projects are the initial grant (Trustlog); "" means none.
	Access   string   `json:"access,omitempty" yaml:"access,omitempty"`
	Projects []string `json:"projects,omitempty" yaml:"projects,omitempty"`
}

// AuditVerification is GET /1.0/trustlog/audit/verify: the hash chain
// recomputed over the whole event log.
type AuditVerification struct {
	// Events is how many events were checked; LastSeq and LastHash the
	// position reached.
	Events   uint64 `json:"events" yaml:"events"`
	LastSeq  uint64 `json:"last_seq" yaml:"last_seq"`
	LastHash string `json:"last_hash" yaml:"last_hash"`
	// FirstBreak is the first sequence where the log stops being one hash
	// chain, 0 if it is one: an event whose prevhash does not match the
	// previous event, a record that is not an envelope, the first sequence
	// missing, or one delivered twice with different content.
	FirstBreak uint64 `json:"first_break" yaml:"first_break"`
	// FirstBreakReason says what is wrong at FirstBreak.
	FirstBreakReason string `json:"first_break_reason,omitempty" yaml:"first_break_reason,omitempty"`
	// Undecodable lists the sequences that are not valid envelopes.
	Undecodable []uint64 `json:"undecodable" yaml:"undecodable"`
	// OK is true when the chain is whole and every event decodes.
	OK bool `json:"ok" yaml:"ok"`
}

// AuditEntry is one event of GET /1.0/trustlog/audit/history.
type AuditEntry struct {
	Seq     uint64     `json:"seq" yaml:"seq"`
	Time    time.Time  `json:"time" yaml:"time"`
	Type    string     `json:"type" yaml:"type"`
	Action  string     `json:"action" yaml:"action"`
	Subject string     `json:"subject" yaml:"subject"`
	Actor   AuditActor `json:"actor" yaml:"actor"`
}

// AuditActor is who caused an event: name, authentication method, address.
type AuditActor struct {
	Username string `json:"username" yaml:"username"`
	Protocol string `json:"protocol" yaml:"protocol"`
	Address  string `json:"address" yaml:"address"`
}

// ValidHostname reports whether h is a DNS host name: dot-separated labels
// of letters, digits and inner hyphens, at most 63 bytes each and 253 in
// all. Addresses in tokens and ACME domains are checked with it.
func ValidHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
