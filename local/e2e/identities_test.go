package e2e_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
)

// TestTLSIdentities covers LXD's pending TLS identities: an admin creates
// one and gets a token; the token works only through the identities API,
// once, with the caller's client certificate; the identity then starts
// with no access, shares the grant model with OIDC users, and stays out of
// the certificate trust store. An expired token takes its pending identity
// with it.
func TestTLSIdentities(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	s := startClocked(t, clk)
	base := "https://" + s.d.HTTPSAddr()

	code, env := s.call(t, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: "runner", Token: true})
	if code != http.StatusCreated {
		t.Fatalf("create pending identity: %d %s", code, env.Error)
	}
	var tok api.CertificateAddToken
	if err := json.Unmarshal(env.Metadata, &tok); err != nil || tok.Type != "Client certificate" || tok.ClientName != "runner" || tok.Secret == "" {
		t.Fatalf("identity token = %+v (%v)", tok, err)
	}
	s.secrets = append(s.secrets, tok.Secret)
	if _, env := s.call(t, "GET", "/1.0/operations", nil); strings.Contains(string(env.Metadata), "/1.0/operations/") {
		t.Errorf("an identity token is listed as an operation: %s", env.Metadata)
	}
	pair, cert := newCert(t, "", "runner")
	c := tlsClient(&pair)

	bad := []struct {
		name     string
		client   *http.Client
		path     string
		body     any
		wantCode int
		wantErr  string
	}{
		{name: "fail/identity token on /1.0/certificates", client: c, path: "/1.0/certificates", body: api.CertificatesPost{Type: "client", TrustToken: tok.Encode()}, wantCode: 403, wantErr: "TLS Identity token detected"},
		{name: "fail/more than the token", client: c, path: "/1.0/auth/identities/tls", body: api.IdentitiesTLSPost{Name: "x", TrustToken: tok.Encode()}, wantCode: 403, wantErr: "Only trust token must be provided"},
		{name: "fail/no token", client: c, path: "/1.0/auth/identities/tls", body: api.IdentitiesTLSPost{}, wantCode: 403, wantErr: "Trust token required"},
		{name: "fail/no client certificate", client: tlsClient(nil), path: "/1.0/auth/identities/tls", body: api.IdentitiesTLSPost{TrustToken: tok.Encode()}, wantCode: 400, wantErr: "No client certificate provided"},
		{name: "fail/wrong secret", client: c, path: "/1.0/auth/identities/tls", body: api.IdentitiesTLSPost{TrustToken: func() string { x := tok; x.Secret = strings.Repeat("0", 64); return x.Encode() }()}, wantCode: 403, wantErr: "No matching"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := s.lastSeq(t)
			code, env := do(t, tt.client, "POST", base+tt.path, tt.body)
			if code != tt.wantCode || !strings.Contains(env.Error, tt.wantErr) {
				t.Errorf("POST %s = %d %q, want %d %q", tt.path, code, env.Error, tt.wantCode, tt.wantErr)
			}
			if s.lastSeq(t) != before {
				t.Error("a refused request appended events")
			}
		})
	}

	if code, env := do(t, c, "POST", base+"/1.0/auth/identities/tls", api.IdentitiesTLSPost{TrustToken: tok.Encode()}); code != http.StatusCreated {
		t.Fatalf("redeem identity token: %d %s", code, env.Error)
	}
	if code, _ := do(t, tlsClient(nil), "POST", base+"/1.0/auth/identities/tls", api.IdentitiesTLSPost{TrustToken: tok.Encode()}); code == http.StatusCreated {
		t.Error("the token was accepted twice")
	}
	_, env = do(t, c, "GET", base+"/1.0", nil)
	if srv := serverOf(t, env); srv.Auth != "trusted" || srv.AuthUserMethod != "tls" || srv.AuthUserName != fingerprintOf(cert) {
		t.Fatalf("GET /1.0 as the identity: %+v", srv)
	}
	if code, _ := do(t, c, "GET", base+"/1.0/certificates", nil); code != http.StatusForbidden {
		t.Errorf("ungranted TLS identity GET /1.0/certificates = %d, want 403", code)
	}
	if _, env := s.call(t, "GET", "/1.0/certificates", nil); strings.Contains(string(env.Metadata), fingerprintOf(cert)) {
		t.Error("a TLS identity appears in the certificate trust store")
	}
	if code, env := s.call(t, "PUT", "/1.0/auth/identities/tls/runner", api.IdentityPut{Access: "admin"}); code != http.StatusOK {
		t.Fatalf("grant: %d %s", code, env.Error)
	}
	if code, _ := do(t, c, "GET", base+"/1.0/certificates", nil); code != http.StatusOK {
		t.Errorf("granted TLS identity GET /1.0/certificates = %d", code)
	}
	if code, env := s.call(t, "DELETE", "/1.0/auth/identities/tls/runner", nil); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, env.Error)
	}
	if _, env := do(t, c, "GET", base+"/1.0", nil); serverOf(t, env).Auth != "untrusted" {
		t.Error("a deleted identity is still trusted")
	}

	// An expired token is refused and takes its pending identity with it.
	s.configure(t, map[string]string{"core.remote_token_expiry": "1H"})
	_, env = s.call(t, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: "late", Token: true})
	var late api.CertificateAddToken
	_ = json.Unmarshal(env.Metadata, &late)
	clk.Add(2 * time.Hour)
	pair2, _ := newCert(t, "", "late")
	if code, env := do(t, tlsClient(&pair2), "POST", base+"/1.0/auth/identities/tls", api.IdentitiesTLSPost{TrustToken: late.Encode()}); code != http.StatusForbidden || env.Error != "Token has expired" {
		t.Errorf("expired identity token = %d %q", code, env.Error)
	}
	var ids []api.Identity
	_, env = s.call(t, "GET", "/1.0/auth/identities?recursion=1", nil)
	_ = json.Unmarshal(env.Metadata, &ids)
	if len(ids) != 0 {
		t.Errorf("identities after expiry = %+v, want none", ids)
	}
	clk.Add(-2 * time.Hour)

	// Deleting a pending identity revokes its token.
	_, env = s.call(t, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: "gone", Token: true, Access: "admin"})
	var gone api.CertificateAddToken
	_ = json.Unmarshal(env.Metadata, &gone)
	s.call(t, "DELETE", "/1.0/auth/identities/tls/gone", nil)
	if code, _ := do(t, tlsClient(&pair2), "POST", base+"/1.0/auth/identities/tls", api.IdentitiesTLSPost{TrustToken: gone.Encode()}); code != http.StatusForbidden {
		t.Errorf("token of a deleted identity = %d, want 403", code)
	}
	// An admin adds a certificate directly as an identity, with a grant.
	_, cert3 := newCert(t, "", "direct")
	code, env = s.call(t, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: "direct", Certificate: pemString(cert3), Access: "restricted", Projects: []string{"web"}})
	if code != http.StatusCreated {
		t.Fatalf("add identity with certificate: %d %s", code, env.Error)
	}
	if code, _ := s.call(t, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: "direct2", Certificate: pemString(cert3)}); code != http.StatusConflict {
		t.Errorf("same certificate twice = %d, want 409", code)
	}
}

func pemString(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// TestCLIIdentitiesAndWhoami drives the trustlog CLI: an admin manages
// identities over the local socket, and `auth whoami --explain` tells a
// TLS client which trust entry and, in PKI mode, which CA and CRL decided
// its access.
func TestCLIIdentitiesAndWhoami(t *testing.T) {
	t.Parallel()
	s := start(t)
	admin := t.TempDir()

	out := trustlogCLI(t, s, admin, "auth", "identity", "create", "tls/ci-runner", "--access", "restricted", "--projects", "web,db", "-q")
	tok, err := api.DecodeCertificateAddToken(strings.TrimSpace(out))
	if err != nil || tok.Type != "Client certificate" {
		t.Fatalf("identity create printed %q (%v)", out, err)
	}
	list := trustlogCLI(t, s, admin, "auth", "identity", "list", "--format", "csv")
	if !strings.Contains(list, "tls,ci-runner,") || !strings.Contains(list, "Client certificate (pending)") || !strings.Contains(list, "restricted (web,db)") {
		t.Errorf("identity list:\n%s", list)
	}
	trustlogCLI(t, s, admin, "auth", "identity", "grant", "tls/ci-runner", "admin")
	if show := trustlogCLI(t, s, admin, "auth", "identity", "show", "tls/ci-runner"); !strings.Contains(show, "access: admin") || !strings.Contains(show, "access_source: grant") {
		t.Errorf("identity show after grant:\n%s", show)
	}
	trustlogCLI(t, s, admin, "auth", "identity", "revoke", "tls/ci-runner")
	if show := trustlogCLI(t, s, admin, "auth", "identity", "show", "tls/ci-runner"); !strings.Contains(show, "access: none") {
		t.Errorf("identity show after revoke:\n%s", show)
	}
	trustlogCLI(t, s, admin, "auth", "identity", "delete", "tls/ci-runner")
	if list := trustlogCLI(t, s, admin, "auth", "identity", "list", "--format", "csv"); strings.TrimSpace(list) != "" {
		t.Errorf("identity list after delete:\n%s", list)
	}
	if who := trustlogCLI(t, s, admin, "auth", "whoami", "--explain"); !strings.Contains(who, "Authentication method: unix") || !strings.Contains(who, "local unix socket") {
		t.Errorf("whoami on the socket:\n%s", who)
	}

	// A TLS client joins with a token and asks why it is trusted.
	user := t.TempDir()
	joinTok, _ := s.issue(t, api.CertificatesPost{Name: "laptop"})
	trustlogCLI(t, s, user, "remote", "add", "s", joinTok)
	who := trustlogCLI(t, s, user, "auth", "whoami", "s:", "--explain")
	for _, want := range []string{"Authentication method: tls", "Access: admin", `Matches trust entry "laptop" (type client)`, "Access: full (unrestricted trusted certificate)"} {
		if !strings.Contains(who, want) {
			t.Errorf("whoami --explain lacks %q:\n%s", want, who)
		}
	}
}
