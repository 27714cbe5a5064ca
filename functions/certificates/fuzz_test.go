package certificates_test

import (
	"encoding/base64"
	"testing"

	"github.com/trustlog/trustlog/functions/certificates"
)

// FuzzParseCertificate: certificate intake (base64 DER or PEM) never
// panics, and what it accepts re-encodes to the same certificate.
func FuzzParseCertificate(f *testing.F) {
	f.Add("")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add(base64.StdEncoding.EncodeToString([]byte{0x30, 0x82, 0x01, 0x0a}))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := certificates.ParseCertificate(s)
		if err != nil {
			return
		}
		again, err := certificates.ParseCertificate(certificates.EncodePEM(c))
		if err != nil || !again.Equal(c) {
			t.Fatalf("re-parse of an accepted certificate: %v", err)
		}
	})
}
