package service_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
)

// identityWith makes c an active TLS identity named name, through the
// admin socket, with access restricted to project "p".
func (s *stack) identityWith(t *testing.T, c *cert, name string) {
	t.Helper()
	rep := s.call(t, nil, "POST", "/1.0/auth/identities/tls",
		api.IdentitiesTLSPost{Name: name, Certificate: c.B64(), Access: "restricted", Projects: []string{"p"}})
	wantCode(t, rep, http.StatusCreated)
}

// certificateToken issues a certificate add token through the admin
// socket and returns it encoded, as a client would receive it.
func (s *stack) certificateToken(t *testing.T, req api.CertificatesPost) string {
	t.Helper()
	req.Token = true
	rep := s.call(t, nil, "POST", "/1.0/certificates", req)
	wantCode(t, rep, http.StatusAccepted)
	var op struct {
		Metadata struct {
			Secret      string    `json:"secret"`
			Fingerprint string    `json:"fingerprint"`
			Addresses   []string  `json:"addresses"`
			ExpiresAt   time.Time `json:"expiresAt"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(rep.Env.Metadata, &op); err != nil {
		t.Fatal(err)
	}
	m := op.Metadata
	return api.CertificateAddToken{ClientName: req.Name, Fingerprint: m.Fingerprint, Addresses: m.Addresses,
		Secret: m.Secret, ExpiresAt: m.ExpiresAt}.Encode()
}

// TestCertificateTakeover: a certificate belongs to one principal, across
// the trust store and the TLS identities. Every path that would give a
// certificate held by one principal to another answers 409 and appends
// nothing; the holder keeps it.
func TestCertificateTakeover(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	victim, entry, mallory := s.validCert(t, "victim"), s.validCert(t, "entry"), s.validCert(t, "mallory")
	s.identityWith(t, victim, "victim")
	s.add(t, entry, api.CertificatesPost{Name: "entry"})
	s.add(t, mallory, api.CertificatesPost{Name: "mallory", Restricted: true, Projects: []string{"p"}})
	malloryClient, victimClient := s.client(t, mallory), s.client(t, victim)
	malloryPut := api.CertificatePut{Name: "mallory", Type: "client", Restricted: true, Projects: []string{"p"}, Certificate: victim.PEM()}
	const byIdentity = "Certificate already used by a TLS identity"

	for _, tc := range []struct {
		name    string
		c       *http.Client // nil: the admin socket
		method  string
		path    string
		body    any
		wantErr string
	}{
		{name: "fail/restricted client puts an identity's certificate", c: malloryClient, method: "PUT",
			path: "/1.0/certificates/" + mallory.FP, body: malloryPut, wantErr: byIdentity},
		{name: "fail/restricted client patches in an identity's certificate", c: malloryClient, method: "PATCH",
			path: "/1.0/certificates/" + mallory.FP, body: map[string]string{"certificate": victim.PEM()}, wantErr: byIdentity},
		{name: "fail/admin patches in an identity's certificate", method: "PATCH",
			path: "/1.0/certificates/" + entry.FP, body: map[string]string{"certificate": victim.PEM()}, wantErr: byIdentity},
		{name: "fail/admin puts an identity's certificate", method: "PUT",
			path: "/1.0/certificates/" + entry.FP, body: api.CertificatePut{Name: "entry", Type: "client", Certificate: victim.PEM()},
			wantErr: byIdentity},
		{name: "fail/admin adds an identity's certificate", method: "POST", path: "/1.0/certificates",
			body: api.CertificatesPost{Name: "again", Certificate: victim.B64()}, wantErr: byIdentity},
		{name: "fail/admin adds an identity's certificate as pem", method: "POST", path: "/1.0/certificates",
			body: api.CertificatesPost{Name: "again", Certificate: victim.PEM(), Type: "metrics"}, wantErr: byIdentity},
		{name: "fail/an identity's certificate redeems a certificate token", c: victimClient, method: "POST", path: "/1.0/certificates",
			body:    api.CertificatesPost{TrustToken: s.certificateToken(t, api.CertificatesPost{Name: "admin-token"}), Certificate: victim.B64()},
			wantErr: byIdentity},
		{name: "fail/admin makes a trusted certificate an identity", method: "POST", path: "/1.0/auth/identities/tls",
			body: api.IdentitiesTLSPost{Name: "twin", Certificate: entry.B64()}, wantErr: "Certificate already in trust store"},
		{name: "fail/admin makes an identity's certificate another identity", method: "POST", path: "/1.0/auth/identities/tls",
			body: api.IdentitiesTLSPost{Name: "twin", Certificate: victim.B64()}, wantErr: byIdentity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			wantError(t, s.call(t, tc.c, tc.method, tc.path, tc.body), http.StatusConflict, tc.wantErr)
			s.unchanged(t, before)
		})
	}

	// Each holder still is who it was.
	if srv, _ := s.server(t, victimClient); srv.AuthUserName != victim.FP || srv.Auth != "trusted" {
		t.Errorf("victim: auth %q as %q", srv.Auth, srv.AuthUserName)
	}
	var who api.IdentityInfo
	s.call(t, victimClient, "GET", "/1.0/auth/identities/current", nil).metadata(t, &who)
	if !who.Recorded || who.Name != "victim" {
		t.Errorf("victim is %+v, want the identity victim", who.Identity)
	}
	if c, rep := s.certificate(t, mallory.FP); rep.Code != 200 || c.Certificate != mallory.PEM() {
		t.Errorf("mallory's entry changed: %s", rep)
	}
	if _, rep := s.certificate(t, victim.FP); rep.Code != http.StatusNotFound {
		t.Errorf("the identity's certificate is in the trust store: %s", rep)
	}
}
