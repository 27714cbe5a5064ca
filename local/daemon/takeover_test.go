package daemon_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
)

// TestTakeoverWhileFailClosed: in PKI mode with core.crl_fail_closed and
// a CRL past its nextUpdate, authentication refuses every CA client, but a
// holder's certificate still passes the CA check of the token paths. So a
// trust-store entry's or a TLS identity's holder reaches both untrusted
// redemption paths; neither gives the certificate to a second principal:
// 409 in the envelope, nothing appended.
func TestTakeoverWhileFailClosed(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	now := clock.Now()
	ca := newPKICA(t, "takeover CA", now)
	s.setCA(t, ca.PEM)
	s.setCRL(t, ca.crl(t, 1, now.Add(-time.Minute), now.Add(time.Hour)))
	entry, ident := ca.client(t, "entry", now), ca.client(t, "ident", now)
	s.trust(t, entry, api.CertificatesPost{Name: "entry"})
	s.mustCall(t, http.StatusCreated, "POST", "/1.0/auth/identities/tls",
		api.IdentitiesTLSPost{Name: "ident", Certificate: ident.PEM, Access: "admin"})
	s.setConfig(t, "core.crl_fail_closed", "true")
	clock.Advance(2 * time.Hour)
	entryClient, identClient := s.client(t, entry), s.client(t, ident)
	for _, c := range []*http.Client{entryClient, identClient} {
		if v := s.view(t, c); v.Auth != "untrusted" {
			t.Fatalf("a CA client is %q with a stale CRL and core.crl_fail_closed", v.Auth)
		}
	}

	_, certToken := s.issueToken(t, "grab")
	rep := s.mustCall(t, http.StatusCreated, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: "twin", Token: true})
	var identityToken api.CertificateAddToken
	if err := json.Unmarshal(rep.Env.Metadata, &identityToken); err != nil {
		t.Fatal(err)
	}

	before := s.lastSeq(t)
	wantErr(t, "an identity's certificate redeems a certificate token",
		s.over(t, identClient, "POST", "/1.0/certificates", api.CertificatesPost{TrustToken: certToken}),
		http.StatusConflict, "Certificate already used by a TLS identity")
	wantErr(t, "a trusted certificate activates a TLS identity",
		s.over(t, entryClient, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{TrustToken: identityToken.Encode()}),
		http.StatusConflict, "Certificate already in trust store")
	if after := s.lastSeq(t); after != before {
		t.Errorf("refused takeovers appended %d events", after-before)
	}
}
