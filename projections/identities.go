package projections

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
)

// Identity is an OIDC user or a TLS identity as the read model knows it.
// Values reachable from a Model must not be modified.
type Identity struct {
	ID         string
	AuthMethod string
	Name       string
	// Issuer and Subject identify an OIDC user.
	Issuer  string
	Subject string
	// Access is the explicit grant (events.AccessAdmin, AccessRestricted,
	// AccessNone), or "" when none was ever made.
	Access   string
	Projects []string
	// Pending is true for a TLS identity whose token is not redeemed yet;
	// TokenID names that token.
	Pending bool
	TokenID string
	// Fingerprint and PEM are the certificate of an active TLS identity.
	Fingerprint string
	PEM         string
	// CreatedAt is the time of IdentityCreated; GrantedAt of the last grant.
	CreatedAt time.Time
	GrantedAt time.Time

	parsed *lazyCert
}

// X509 returns the parsed certificate of an active TLS identity, or nil.
// It is safe for concurrent use.
func (i *Identity) X509() *x509.Certificate {
	if i.parsed == nil {
		return nil
	}
	i.parsed.once.Do(func() { i.parsed.cert = parsePEM(i.parsed.pem) })
	return i.parsed.cert
}

// OIDCIdentityID is the identity id of subject at issuer: the hex of the
// first 16 bytes of SHA-256(issuer ‖ 0x00 ‖ subject).
func OIDCIdentityID(issuer, subject string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return hex.EncodeToString(sum[:16])
}

// Identity returns the identity with id.
func (m *Model) Identity(id string) (*Identity, bool) {
	i, ok := m.identities[id]
	return i, ok
}

// IdentityByCertificate returns the active TLS identity whose certificate
// has fingerprint sum.
func (m *Model) IdentityByCertificate(sum [32]byte) (*Identity, bool) {
	id, ok := m.identityByCert[sum]
	if !ok {
		return nil, false
	}
	return m.Identity(id)
}

// Identities returns every identity, by method then name then id.
func (m *Model) Identities() []*Identity {
	out := slices.Collect(maps.Values(m.identities))
	slices.SortFunc(out, func(a, b *Identity) int {
		if c := strings.Compare(a.AuthMethod, b.AuthMethod); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// NumIdentities returns how many identities the model holds.
func (m *Model) NumIdentities() int { return len(m.identities) }

func (b *Builder) applyIdentity(p events.Payload, at time.Time) {
	switch e := p.(type) {
	case *events.IdentityCreated:
		if _, ok := b.m.identities[e.ID]; ok || e.ID == "" {
			return
		}
		b.identityMap()[e.ID] = &Identity{
			ID: e.ID, AuthMethod: e.AuthMethod, Name: e.Name, Issuer: e.Issuer, Subject: e.Subject,
			Access: e.Access, Projects: nonNil(e.Projects),
			// A TLS identity waits for its token; an OIDC identity made by an
			// administrator before the user's first login waits for them.
			Pending:   e.AuthMethod == events.IdentityTLS || (e.AuthMethod == events.IdentityOIDC && e.Subject == ""),
			CreatedAt: at,
		}
	case *events.IdentityGranted:
		old, ok := b.m.identities[e.ID]
		if !ok {
			return
		}
		next := *old
		next.Access, next.Projects, next.GrantedAt = e.Access, nonNil(e.Projects), at
		b.identityMap()[e.ID] = &next
	case *events.IdentityActivated:
		old, ok := b.m.identities[e.ID]
		sum, valid := ParseFingerprint(e.Fingerprint)
		if !ok || !old.Pending || !valid {
			return
		}
		next := *old
		next.Pending, next.Fingerprint, next.PEM, next.parsed = false, e.Fingerprint, e.Certificate, newLazyCert(e.Certificate)
		b.identityMap()[e.ID] = &next
		b.certIdentities()[sum] = e.ID
	case *events.IdentityRemoved:
		b.removeIdentity(e.ID)
	}
}

// removeIdentity drops an identity and its certificate index.
func (b *Builder) removeIdentity(id string) {
	old, ok := b.m.identities[id]
	if !ok {
		return
	}
	delete(b.identityMap(), id)
	if sum, ok := ParseFingerprint(old.Fingerprint); ok && b.m.identityByCert[sum] == id {
		delete(b.certIdentities(), sum)
	}
}

func (b *Builder) identityMap() map[string]*Identity {
	if !b.identitiesOwned {
		b.m.identities = maps.Clone(b.m.identities)
		if b.m.identities == nil {
			b.m.identities = map[string]*Identity{}
		}
		b.identitiesOwned = true
	}
	return b.m.identities
}

func (b *Builder) certIdentities() map[[32]byte]string {
	if !b.identityCertOwned {
		b.m.identityByCert = maps.Clone(b.m.identityByCert)
		if b.m.identityByCert == nil {
			b.m.identityByCert = map[[32]byte]string{}
		}
		b.identityCertOwned = true
	}
	return b.m.identityByCert
}
