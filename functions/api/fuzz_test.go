package api_test

import (
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
)

// FuzzDecodeCertificateAddToken: any input either fails or decodes to a
// token that encodes and decodes to itself.
func FuzzDecodeCertificateAddToken(f *testing.F) {
	good := api.CertificateAddToken{ClientName: "c", Fingerprint: testFP, Addresses: []string{"h:1"}, Secret: testSecret,
		ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.Add(good.Encode())
	f.Add("")
	f.Add("e30=")
	f.Add("not base64 at all")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := api.DecodeCertificateAddToken(s)
		if err != nil {
			return
		}
		again, err := api.DecodeCertificateAddToken(tok.Encode())
		if err != nil {
			t.Fatalf("re-decode of %+v: %v", tok, err)
		}
		if again.Secret != tok.Secret || again.Fingerprint != tok.Fingerprint || !again.ExpiresAt.Equal(tok.ExpiresAt) {
			t.Fatalf("round trip changed the token: %+v → %+v", tok, again)
		}
	})
}
