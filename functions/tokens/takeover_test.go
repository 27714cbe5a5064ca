package tokens_test

import (
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
)

// TestRedeemHeldCertificate: neither kind of token gives a certificate
// that a trust-store entry or an active TLS identity already holds. The
// redemption is a 409, nothing is appended, and the token stays usable.
func TestRedeemHeldCertificate(t *testing.T) {
	t.Parallel()
	_, in := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	ctx := ctxT(t)

	// entry is in the trust store; ident is an active TLS identity's.
	entry, ident := newCert(t), newCert(t)
	op, _ := in.issue(t, api.CertificatesPost{Name: "entry", Token: true})
	if _, err := in.h.Redeem(ctx, admin, tokenFor(t, op), entry); err != nil {
		t.Fatal(err)
	}
	tok, err := in.h.IssueIdentity(ctx, admin, "runner", events.AccessNone, []string{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.h.RedeemIdentity(ctx, admin, tok.Encode(), ident); err != nil {
		t.Fatal(err)
	}

	redeem := func(token string, c *x509.Certificate) error {
		_, err := in.h.Redeem(ctx, admin, token, c)
		return err
	}
	redeemIdentity := func(token string, c *x509.Certificate) error {
		_, err := in.h.RedeemIdentity(ctx, admin, token, c)
		return err
	}
	certToken := func(name string) string {
		op, _ := in.issue(t, api.CertificatesPost{Name: name, Token: true})
		return tokenFor(t, op)
	}
	identityToken := func(name string) string {
		tok, err := in.h.IssueIdentity(ctx, admin, name, events.AccessNone, []string{})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Encode()
	}
	for _, tc := range []struct {
		name    string
		token   string
		redeem  func(string, *x509.Certificate) error
		cert    *x509.Certificate
		wantErr string
	}{
		{name: "fail/certificate token for an identity's certificate", token: certToken("c1"), redeem: redeem, cert: ident,
			wantErr: "Certificate already used by a TLS identity"},
		{name: "fail/certificate token for a trusted certificate", token: certToken("c2"), redeem: redeem, cert: entry,
			wantErr: "Certificate already in trust store"},
		{name: "fail/identity token for a trusted certificate", token: identityToken("i1"), redeem: redeemIdentity, cert: entry,
			wantErr: "Certificate already in trust store"},
		{name: "fail/identity token for another identity's certificate", token: identityToken("i2"), redeem: redeemIdentity, cert: ident,
			wantErr: "Certificate already used by a TLS identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := in.lastSeq(t)
			wantStatus(t, tc.redeem(tc.token, tc.cert), http.StatusConflict, tc.wantErr)
			if after := in.lastSeq(t); after != before {
				t.Errorf("a refused redemption appended %d events", after-before)
			}
			// The token was not consumed: a free certificate redeems it.
			if err := tc.redeem(tc.token, newCert(t)); err != nil {
				t.Errorf("token burnt by the refused redemption: %v", err)
			}
		})
	}
}
