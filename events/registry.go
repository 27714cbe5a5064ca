package events

import (
	"encoding/json"
	"fmt"
	"sort"
)

// registry maps every known versioned type name to a constructor of its
// payload. Old versions stay here forever.
var registry = map[string]func() Payload{
	CertificateTrusted{}.EventType():  func() Payload { return &CertificateTrusted{} },
	CertificateUpdated{}.EventType():  func() Payload { return &CertificateUpdated{} },
	CertificateRemoved{}.EventType():  func() Payload { return &CertificateRemoved{} },
	ConfigChanged{}.EventType():       func() Payload { return &ConfigChanged{} },
	ConfigMemberChanged{}.EventType(): func() Payload { return &ConfigMemberChanged{} },
	TokenIssued{}.EventType():         func() Payload { return &TokenIssued{} },
	TokenRedeemed{}.EventType():       func() Payload { return &TokenRedeemed{} },
	TokenRevoked{}.EventType():        func() Payload { return &TokenRevoked{} },
	TokenExpired{}.EventType():        func() Payload { return &TokenExpired{} },
	CAChanged{}.EventType():           func() Payload { return &CAChanged{} },
	CRLUpdated{}.EventType():          func() Payload { return &CRLUpdated{} },
	CRLRevocations{}.EventType():      func() Payload { return &CRLRevocations{} },
	IdentityCreated{}.EventType():     func() Payload { return &IdentityCreated{} },
	IdentityGranted{}.EventType():     func() Payload { return &IdentityGranted{} },
	IdentityActivated{}.EventType():   func() Payload { return &IdentityActivated{} },
	IdentityRemoved{}.EventType():     func() Payload { return &IdentityRemoved{} },
	AccessDenied{}.EventType():        func() Payload { return &AccessDenied{} },

	ACMEChallengePresented{}.EventType():   func() Payload { return &ACMEChallengePresented{} },
	ACMEChallengeCleaned{}.EventType():     func() Payload { return &ACMEChallengeCleaned{} },
	ServerCertificateRotated{}.EventType(): func() Payload { return &ServerCertificateRotated{} },
	ACMERenewal{}.EventType():              func() Payload { return &ACMERenewal{} },

	AccessDeniedSummary{}.EventType(): func() Payload { return &AccessDeniedSummary{} },
}

// Types returns every event type this version of Trustlog decodes, sorted.
func Types() []string {
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Payload decodes the envelope's data into its typed payload, a pointer to
// one of the event structs of this package. It returns an error wrapping
// ErrUnknownType for a type it does not know.
func (e *Envelope) Payload() (Payload, error) {
	mk, ok := registry[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	p := mk()
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("events: decode %s: %w", e.Type, err)
	}
	return p, nil
}
