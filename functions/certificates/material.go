package certificates

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/response"
)

var errProjectsUnrestricted = response.BadRequest("Projects can only be specified for restricted certificates. Set restricted=true or remove projects")

// ParseCertificate reads certificate material as sent in a POST: PEM, or
// base64 of the DER bytes. Bad material is a 400 error.
func ParseCertificate(s string) (*x509.Certificate, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		return ParsePEM(s)
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, response.BadRequest("Invalid certificate material: " + err.Error())
	}
	return parseDER(der)
}

// ParsePEM reads a PEM-encoded certificate, as PUT and PATCH require.
func ParsePEM(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, response.BadRequest("Invalid PEM encoded certificate")
	}
	return parseDER(b.Bytes)
}

func parseDER(der []byte) (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, response.BadRequest("Invalid certificate material: " + err.Error())
	}
	return c, nil
}

// CheckValidity refuses a certificate that is not valid at now or whose RSA
// key is under 2048 bits, with the messages LXD and Incus use.
func CheckValidity(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return response.BadRequest("The provided certificate isn't valid yet")
	}
	if now.After(c.NotAfter) {
		return response.BadRequest("The provided certificate is expired")
	}
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return response.BadRequest("RSA key is too weak (minimum of 2048bit)")
	}
	return nil
}

// EncodePEM returns the PEM form of c.
func EncodePEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// MaxNameLength is the longest name, in bytes, of a trust-store entry or a
// TLS identity.
const MaxNameLength = 255

// NameProblem returns what is wrong with name as the name of a trust-store
// entry or a TLS identity, or "" if nothing is. As in LXD, a name must not
// start with "-" (it would read as a flag) or contain "/" (it would read as
// a path); it must also be UTF-8 without control characters or line
// separators (it is printed in tables, logs and the audit trail, where a
// line break would forge a line) and at most MaxNameLength bytes. The
// result completes a sentence whose subject is the name.
func NameProblem(name string) string {
	switch {
	case strings.HasPrefix(name, "-") || strings.Contains(name, "/"):
		return `must not start with "-" or contain "/"`
	case !utf8.ValidString(name):
		return "must be valid UTF-8"
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }):
		return "must not contain control characters or line breaks"
	case len(name) > MaxNameLength:
		return fmt.Sprintf("must not be longer than %d bytes", MaxNameLength)
	}
	return ""
}

// checkName refuses a certificate name NameProblem finds fault with.
func checkName(name string) error {
	if p := NameProblem(name); p != "" {
		return response.BadRequest("Certificate name " + p)
	}
	return nil
}

func validType(t string) bool {
	switch t {
	case events.CertificateTypeClient, events.CertificateTypeServer, events.CertificateTypeMetrics:
		return true
	}
	return false
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
