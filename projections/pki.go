package projections

import (
	"crypto/x509"
	"math/big"
	"time"
)

// CA is the certificate authority of PKI mode.
type CA struct {
	PEM         string
	Fingerprint string
	Cert        *x509.Certificate
}

// CRL is a certificate revocation list as the read model holds it: the
// revoked serial numbers of the current CA, and the list's metadata.
// Values reachable from a Model must not be modified.
type CRL struct {
	IssuerFingerprint string
	Number            string
	ThisUpdate        time.Time
	NextUpdate        time.Time
	SHA256            string
	Total             int
	// UpdatedAt is the time of the CRLUpdated event.
	UpdatedAt time.Time

	parts   int
	seen    int
	revoked map[string]struct{}
}

// Complete reports whether every part of the list has been folded in.
func (c *CRL) Complete() bool { return c.seen >= c.parts }

// Revoked reports whether serial is on the list.
func (c *CRL) Revoked(serial *big.Int) bool {
	if c == nil || serial == nil {
		return false
	}
	_, ok := c.revoked[serial.Text(16)]
	return ok
}

// Serials returns the revoked serials in lowercase hex, unordered.
func (c *CRL) Serials() []string {
	out := make([]string, 0, len(c.revoked))
	for s := range c.revoked {
		out = append(out, s)
	}
	return out
}

// Stale reports whether the list has passed its NextUpdate at now.
func (c *CRL) Stale(now time.Time) bool {
	return c != nil && !c.NextUpdate.IsZero() && now.After(c.NextUpdate)
}

// CA returns the certificate authority of PKI mode, or nil when PKI mode is off.
func (m *Model) CA() *CA { return m.ca }

// CRL returns the current, complete revocation list of the CA, or nil.
func (m *Model) CRL() *CRL { return m.crl }

// Revoked reports whether a certificate with serial, issued by the current
// CA, is revoked.
func (m *Model) Revoked(serial *big.Int) bool { return m.crl.Revoked(serial) }
