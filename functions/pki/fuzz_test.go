package pki_test

import (
	"testing"

	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/projections"
)

// FuzzCRLIntake: CRL intake (base64 or PEM, then parsing and checking
// against a model without a CA) never panics and refuses what it cannot
// check.
func FuzzCRLIntake(f *testing.F) {
	f.Add("")
	f.Add("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n")
	f.Add("MIIBAA==")
	f.Fuzz(func(t *testing.T, s string) {
		der, err := pki.DecodeCRL(s)
		if err != nil {
			return
		}
		if _, err := pki.CRLEvents(projections.Empty, der); err == nil {
			t.Fatal("a CRL was accepted with no CA to check it against")
		}
	})
}
