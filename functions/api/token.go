package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// CertificateAddToken is the decoded form of a trust token, as the LXD and
// Incus clients build and parse it: standard base64 of its compact JSON,
// keys in this order.
type CertificateAddToken struct {
	ClientName  string    `json:"client_name"`
	Fingerprint string    `json:"fingerprint"`
	Addresses   []string  `json:"addresses"`
	Secret      string    `json:"secret"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Type is set on the token of a pending TLS identity (LXD's
	// "Client certificate"); such a token is redeemed through
	// POST /1.0/auth/identities/tls, not /1.0/certificates.
	Type string `json:"type,omitempty"`
}

// Encode returns the token string.
func (t CertificateAddToken) Encode() string {
	raw, _ := json.Marshal(t) // a struct of strings and a time always encodes
	return base64.StdEncoding.EncodeToString(raw)
}

// DecodeCertificateAddToken parses a token string and checks the fields
// every client and server requires.
func DecodeCertificateAddToken(s string) (CertificateAddToken, error) {
	var t CertificateAddToken
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return t, errors.New("token is not valid base64")
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, errors.New("token is not valid JSON")
	}
	switch {
	case t.ClientName == "":
		return t, errors.New("no client name in certificate add token")
	case len(t.Addresses) == 0:
		return t, errors.New("no server addresses in certificate add token")
	case t.Secret == "":
		return t, errors.New("no secret in certificate add token")
	case t.Fingerprint == "":
		return t, errors.New("no certificate fingerprint in certificate add token")
	}
	return t, nil
}
