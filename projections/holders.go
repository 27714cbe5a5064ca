package projections

import (
	"encoding/hex"

	"github.com/trustlog/trustlog/events"
)

// HolderKind says what kind of principal holds a certificate.
type HolderKind int

// The principals a certificate can belong to.
const (
	// HeldByCertificate is a trust-store entry.
	HeldByCertificate HolderKind = iota + 1
	// HeldByIdentity is an active TLS identity.
	HeldByIdentity
)

// Holder is the principal a certificate belongs to. A certificate
// (fingerprint) belongs to one principal at most, across the trust store
// and the TLS identities: whoever presents it is that principal and no
// other.
type Holder struct {
	Kind HolderKind
	// ID is the trust-store entry's fingerprint or the identity's id.
	ID   string
	Name string
}

// CertificateHolder returns the principal that holds the certificate whose
// SHA-256 is sum: its trust-store entry, or the active TLS identity bound
// to it.
func (m *Model) CertificateHolder(sum [32]byte) (Holder, bool) {
	if c, ok := m.Certificate(sum); ok {
		return Holder{Kind: HeldByCertificate, ID: c.Fingerprint, Name: c.Name}, true
	}
	if i, ok := m.IdentityByCertificate(sum); ok {
		return Holder{Kind: HeldByIdentity, ID: i.ID, Name: i.Name}, true
	}
	return Holder{}, false
}

// TakenCertificate reports whether ps, appended after m, would give a
// certificate to a principal while another principal holds it, at m or
// through an earlier event of ps; it returns that other holder. The events
// that give a certificate are CertificateTrusted, CertificateUpdated with a
// new fingerprint and IdentityActivated; CertificateRemoved,
// IdentityRemoved and a re-keying CertificateUpdated let one go. It is
// pure, and meant to be asked of every write before it is appended.
func (m *Model) TakenCertificate(ps []events.Payload) (Holder, bool) {
	// changed holds what earlier events of ps did: a holder, or nil for a
	// certificate let go.
	var changed map[[32]byte]*Holder
	holder := func(sum [32]byte) (Holder, bool) {
		if h, ok := changed[sum]; ok {
			if h == nil {
				return Holder{}, false
			}
			return *h, true
		}
		return m.CertificateHolder(sum)
	}
	set := func(fp string, h *Holder) {
		if sum, ok := ParseFingerprint(fp); ok {
			if changed == nil {
				changed = map[[32]byte]*Holder{}
			}
			changed[sum] = h
		}
	}
	for _, p := range ps {
		release, claim, h := ownership(m, changed, p)
		if release != "" {
			set(release, nil)
		}
		if claim == "" {
			continue
		}
		sum, ok := ParseFingerprint(claim)
		if !ok {
			continue // the fold ignores such an event
		}
		if other, held := holder(sum); held {
			return other, true
		}
		set(claim, &h)
	}
	return Holder{}, false
}

// ownership returns the fingerprint p lets go of, and the one it gives to
// holder h. changed is what earlier events of the same write did.
func ownership(m *Model, changed map[[32]byte]*Holder, p events.Payload) (release, claim string, h Holder) {
	switch e := p.(type) {
	case events.CertificateTrusted:
		return ownership(m, changed, &e)
	case *events.CertificateTrusted:
		return "", e.Fingerprint, Holder{Kind: HeldByCertificate, ID: e.Fingerprint, Name: e.Name}
	case events.CertificateUpdated:
		return ownership(m, changed, &e)
	case *events.CertificateUpdated:
		if e.NewFingerprint == "" || e.NewFingerprint == e.Fingerprint {
			return "", "", Holder{}
		}
		return e.Fingerprint, e.NewFingerprint, Holder{Kind: HeldByCertificate, ID: e.NewFingerprint, Name: e.Name}
	case events.CertificateRemoved:
		return ownership(m, changed, &e)
	case *events.CertificateRemoved:
		return e.Fingerprint, "", Holder{}
	case events.IdentityActivated:
		return ownership(m, changed, &e)
	case *events.IdentityActivated:
		return "", e.Fingerprint, Holder{Kind: HeldByIdentity, ID: e.ID, Name: e.Name}
	case events.IdentityRemoved:
		return ownership(m, changed, &e)
	case *events.IdentityRemoved:
		for sum, held := range changed {
			if held != nil && held.Kind == HeldByIdentity && held.ID == e.ID {
				return hex.EncodeToString(sum[:]), "", Holder{}
			}
		}
		if i, ok := m.Identity(e.ID); ok {
			return i.Fingerprint, "", Holder{}
		}
	}
	return "", "", Holder{}
}
