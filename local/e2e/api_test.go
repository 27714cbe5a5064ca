package e2e_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
)

func certDER(t *testing.T, notBefore, notAfter time.Time, key any, pub any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "edge"},
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestBadInputChangesNothing sends every kind of bad request of the
// foundation issue and checks the error envelope and that the stream's
// last sequence did not move.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	s := start(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	now := time.Now()
	good := certDER(t, now.Add(-time.Hour), now.Add(time.Hour), ec, &ec.PublicKey)
	expired := certDER(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), ec, &ec.PublicKey)
	future := certDER(t, now.Add(24*time.Hour), now.Add(48*time.Hour), ec, &ec.PublicKey)
	weakDER := certDER(t, now.Add(-time.Hour), now.Add(time.Hour), weak, &weak.PublicKey)
	b64 := base64.StdEncoding.EncodeToString
	s.trust(t, mustParse(t, good), "existing")

	type req struct {
		method, path string
		body         string
		header       map[string]string
	}
	for _, tc := range []struct {
		name     string
		req      req
		wantCode int
		wantErr  string
	}{
		{name: "fail/malformed json", req: req{"POST", "/1.0/certificates", `{"certificate":`, nil}, wantCode: 400},
		{name: "fail/bad base64", req: req{"POST", "/1.0/certificates", `{"certificate":"%%%"}`, nil}, wantCode: 400, wantErr: "Invalid certificate material: "},
		{name: "fail/garbage der", req: req{"POST", "/1.0/certificates", `{"certificate":"` + b64([]byte("not a certificate")) + `"}`, nil}, wantCode: 400, wantErr: "Invalid certificate material: "},
		{name: "fail/expired", req: req{"POST", "/1.0/certificates", `{"certificate":"` + b64(expired) + `"}`, nil}, wantCode: 400, wantErr: "The provided certificate is expired"},
		{name: "fail/not yet valid", req: req{"POST", "/1.0/certificates", `{"certificate":"` + b64(future) + `"}`, nil}, wantCode: 400, wantErr: "The provided certificate isn't valid yet"},
		{name: "fail/weak rsa", req: req{"POST", "/1.0/certificates", `{"certificate":"` + b64(weakDER) + `"}`, nil}, wantCode: 400, wantErr: "RSA key is too weak (minimum of 2048bit)"},
		{name: "fail/duplicate", req: req{"POST", "/1.0/certificates", `{"certificate":"` + b64(good) + `"}`, nil}, wantCode: 409, wantErr: "Certificate already in trust store"},
		{name: "fail/bad type", req: req{"POST", "/1.0/certificates", `{"type":"bogus","certificate":"` + b64(good) + `"}`, nil}, wantCode: 400, wantErr: "Invalid certificate type"},
		{name: "fail/projects without restricted", req: req{"POST", "/1.0/certificates", `{"projects":["a"],"certificate":"` + b64(good) + `"}`, nil}, wantCode: 400, wantErr: "Projects can only be specified for restricted certificates. Set restricted=true or remove projects"},
		{name: "fail/too large", req: req{"POST", "/1.0/certificates", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, nil}, wantCode: 413},
		{name: "fail/unknown fingerprint", req: req{"GET", "/1.0/certificates/0123456789abcdef", "", nil}, wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/delete unknown", req: req{"DELETE", "/1.0/certificates/ffffffffffff", "", nil}, wantCode: 404, wantErr: "Certificate not found"},
		{name: "fail/unknown path", req: req{"GET", "/1.0/nothing", "", nil}, wantCode: 404, wantErr: "not found"},
		{name: "fail/wrong etag", req: req{"PUT", "/1.0", `{"config":{"user.a":"b"}}`, map[string]string{"If-Match": `"abc"`}}, wantCode: 412, wantErr: "ETag doesn't match: "},
		{name: "fail/unknown config key", req: req{"PATCH", "/1.0", `{"config":{"core.nope":"1"}}`, nil}, wantCode: 400, wantErr: "Invalid config: unknown configuration key \"core.nope\""},
		{name: "fail/bad https address", req: req{"PATCH", "/1.0", `{"config":{"core.https_address":"not a host:x"}}`, nil}, wantCode: 400},
		{name: "fail/bad token expiry", req: req{"PATCH", "/1.0", `{"config":{"core.remote_token_expiry":"soon"}}`, nil}, wantCode: 400},
		{name: "fail/type change", req: req{"PATCH", "/1.0/certificates/" + fingerprintOf(mustParse(t, good)), `{"type":"metrics"}`, nil}, wantCode: 400, wantErr: "The certificate type cannot be changed"},
		{name: "fail/put bad pem", req: req{"PATCH", "/1.0/certificates/" + fingerprintOf(mustParse(t, good)), `{"certificate":"garbage"}`, nil}, wantCode: 400, wantErr: "Invalid PEM encoded certificate"},
		{name: "fail/token with certificate", req: req{"POST", "/1.0/certificates", `{"name":"x","token":true,"certificate":"` + b64(good) + `"}`, nil}, wantCode: 400, wantErr: "Can't use certificate if token is requested"},
		{name: "fail/token for metrics", req: req{"POST", "/1.0/certificates", `{"name":"x","token":true,"type":"metrics"}`, nil}, wantCode: 400, wantErr: "Tokens can only be issued for client certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			r, _ := http.NewRequest(tc.req.method, "http://unix.socket"+tc.req.path, bytes.NewReader([]byte(tc.req.body)))
			for k, v := range tc.req.header {
				r.Header.Set(k, v)
			}
			resp, err := s.admin.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var env api.Response
			if err := json.Unmarshal(raw, &env); err != nil {
				t.Fatalf("not an envelope: %s", raw)
			}
			if resp.StatusCode != tc.wantCode || env.ErrorCode != tc.wantCode || env.Type != "error" {
				t.Fatalf("got %d %+v, want %d", resp.StatusCode, env, tc.wantCode)
			}
			if !strings.HasPrefix(env.Error, tc.wantErr) {
				t.Errorf("error = %q, want prefix %q", env.Error, tc.wantErr)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("error without X-Content-Type-Options: nosniff")
			}
			if after := s.lastSeq(t); after != before {
				t.Errorf("stream moved from %d to %d", before, after)
			}
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEnvelopesAndViews checks the wire shapes of GET / and GET /1.0 for
// untrusted and trusted callers, the ETag of /1.0 and that both
// authenticated headers turn the untrusted view into a refusal.
func TestEnvelopesAndViews(t *testing.T) {
	t.Parallel()
	s := start(t)
	pair, cert := newCert(t, "", "viewer")
	base := "https://" + s.d.HTTPSAddr()

	resp, err := tlsClient(nil).Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"type":"sync","status":"Success","status_code":200,"operation":"","error_code":0,"error":"","metadata":["/1.0"]}` + "\n"
	if string(raw) != want {
		t.Errorf("GET / = %s", raw)
	}

	_, env := do(t, tlsClient(&pair), "GET", base+"/1.0", nil)
	var srv api.Server
	json.Unmarshal(env.Metadata, &srv)
	if srv.Auth != "untrusted" || len(srv.APIExtensions) == 0 || srv.Environment != nil || !srv.ClientCertificate || srv.AuthMethods[0] != "tls" {
		t.Errorf("untrusted /1.0 = %+v", srv)
	}
	for _, h := range []string{"X-Incus-authenticated", "X-LXD-authenticated"} {
		r, _ := http.NewRequest("GET", base+"/1.0", nil)
		r.Header.Set(h, "true")
		resp, err := tlsClient(&pair).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: untrusted /1.0 = %d, want 403", h, resp.StatusCode)
		}
	}

	s.trust(t, cert, "viewer")
	r, _ := http.NewRequest("GET", base+"/1.0", nil)
	resp, err = tlsClient(&pair).Do(r)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	json.Unmarshal(env.Metadata, &srv)
	served := resp.TLS.PeerCertificates[0]
	if srv.Auth != "trusted" || srv.AuthUserName != fingerprintOf(cert) || srv.AuthUserMethod != "tls" || srv.Environment == nil {
		t.Fatalf("trusted /1.0 = %+v", srv)
	}
	if srv.Environment.CertificateFingerprint != fingerprintOf(served) || srv.Environment.CertificateFingerprint != s.d.Fingerprint() ||
		srv.Environment.Certificate != string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: served.Raw})) {
		t.Errorf("environment certificate does not match the served one")
	}
	if len(srv.Environment.Addresses) != 1 || srv.Environment.Addresses[0] != s.d.HTTPSAddr() {
		t.Errorf("addresses = %v", srv.Environment.Addresses)
	}
	if etag := resp.Header.Get("ETag"); len(etag) != 66 || etag[0] != '"' {
		t.Errorf("ETag = %q", etag)
	}
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x", resp.TLS.Version)
	}
}

// TestRemovalTakesEffectNextRequest removes a client while it holds a
// keep-alive connection: its very next request is refused.
func TestRemovalTakesEffectNextRequest(t *testing.T) {
	t.Parallel()
	s := start(t)
	pair, cert := newCert(t, "", "leaving")
	s.trust(t, cert, "leaving")
	c := tlsClient(&pair)
	base := "https://" + s.d.HTTPSAddr()
	if code, _ := do(t, c, "GET", base+"/1.0/certificates", nil); code != 200 {
		t.Fatalf("trusted list: %d", code)
	}
	if code, env := s.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(cert)[:16], nil); code != 200 {
		t.Fatalf("delete: %d %+v", code, env)
	}
	if code, env := do(t, c, "GET", base+"/1.0/certificates", nil); code != 403 || env.Error != "not authorized" {
		t.Fatalf("after removal: %d %+v", code, env)
	}
}
