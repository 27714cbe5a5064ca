package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/pki"
)

// testCA is a certificate authority made in Go for PKI tests.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	crl  int64
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{key: k, cert: c}
}

func (ca *testCA) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
}

// issue signs a client certificate with serial.
func (ca *testCA) issue(t *testing.T, serial int64) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: c}, c
}

// crlOf signs a CRL with the next CRL number revoking serials.
func (ca *testCA) crlOf(t *testing.T, serials ...int64) []byte {
	t.Helper()
	ca.crl++
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(ca.crl), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCRLRevokesKeptAliveClient is the PKI issue's must-show: a CRL
// revoking a trusted client is published while the client holds a
// keep-alive connection; its next request on that same connection is
// refused, with no restart.
func TestCRLRevokesKeptAliveClient(t *testing.T) {
	t.Parallel()
	s := start(t)
	ca := newCA(t)
	if code, env := s.call(t, "PUT", "/1.0/trustlog/pki/ca", pki.CAPut{Certificate: ca.pem()}); code != 200 {
		t.Fatalf("set CA: %d %+v", code, env)
	}
	pair, cert := ca.issue(t, 42)
	s.trust(t, cert, "pki-client")
	c := tlsClient(&pair)
	url := "https://" + s.d.HTTPSAddr() + "/1.0/certificates"
	var reused []bool
	get := func() int {
		req, _ := http.NewRequest("GET", url, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // drained, so the connection is kept
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 200 {
		t.Fatalf("CA-signed trusted client: %d", code)
	}
	if code, env := s.call(t, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(ca.crlOf(t, 42))}); code != 200 {
		t.Fatalf("publish CRL: %d %+v", code, env)
	}
	if code := get(); code != 403 {
		t.Fatalf("revoked client on its kept-alive connection: %d, want 403", code)
	}
	if len(reused) != 2 || !reused[1] {
		t.Errorf("the second request did not reuse the connection: %v", reused)
	}

	// Revoked: cannot be added again, cannot redeem a token, and the token
	// is not consumed.
	if code, env := s.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(cert), nil); code != 200 {
		t.Fatalf("delete: %+v", env)
	}
	code, env := s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Certificate: base64.StdEncoding.EncodeToString(cert.Raw)})
	if code != 403 || env.Error != "The certificate is not trusted by the CA or has been revoked" {
		t.Errorf("re-adding a revoked certificate: %d %+v", code, env)
	}
	tok, _ := s.issue(t, api.CertificatesPost{Name: "after-revocation"})
	if code, _ := redeem(t, c, "https://"+s.d.HTTPSAddr(), tok, nil); code != 403 {
		t.Errorf("revoked certificate redeemed a token: %d", code)
	}
	good, _ := ca.issue(t, 43)
	if code, env := redeem(t, tlsClient(&good), "https://"+s.d.HTTPSAddr(), tok, nil); code != 201 {
		t.Errorf("token consumed by the revoked attempt: %d %+v", code, env)
	}
	// Bad CRLs change nothing.
	before := s.lastSeq(t)
	other := newCA(t)
	for name, body := range map[string]string{
		"not signed by the CA": base64.StdEncoding.EncodeToString(other.crlOf(t, 1)),
		"garbage":              base64.StdEncoding.EncodeToString([]byte("garbage")),
		"older number":         base64.StdEncoding.EncodeToString(func() []byte { ca.crl = 0; return ca.crlOf(t) }()),
	} {
		if code, env := s.call(t, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: body}); code != 400 {
			t.Errorf("%s: %d %+v", name, code, env)
		}
	}
	if code, _ := s.call(t, "PUT", "/1.0/trustlog/pki/ca", pki.CAPut{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))}); code != 400 {
		t.Errorf("non-CA certificate accepted as CA: %d", code)
	}
	if after := s.lastSeq(t); after != before {
		t.Errorf("bad input moved the stream from %d to %d", before, after)
	}
}

// TestTrustCACertificates checks core.trust_ca_certificates: a CA-signed
// client with no entry is an admin (method pki) while the key is on, and
// loses access on the next request once it turns the key off itself.
func TestTrustCACertificates(t *testing.T) {
	t.Parallel()
	s := start(t)
	// A self-signed certificate trusted before PKI mode …
	selfPair, selfCert := newCert(t, "", "legacy")
	s.trust(t, selfCert, "legacy")
	ca := newCA(t)
	s.call(t, "PUT", "/1.0/trustlog/pki/ca", pki.CAPut{Certificate: ca.pem()})
	pair, _ := ca.issue(t, 7)
	c := tlsClient(&pair)
	base := "https://" + s.d.HTTPSAddr()
	if code, _ := do(t, c, "GET", base+"/1.0/certificates", nil); code != 403 {
		t.Fatalf("CA-signed client without entry, key off: %d", code)
	}
	s.call(t, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.trust_ca_certificates": "true"}})
	_, env := do(t, c, "GET", base+"/1.0", nil)
	if authOf(t, env) != "trusted" {
		t.Fatalf("trust_ca on: %s", env.Metadata)
	}
	// whoami --explain's view: trusted through the CA, no entry, no CRL yet.
	_, env = do(t, c, "GET", base+"/1.0/auth/identities/current", nil)
	var info api.IdentityInfo
	_ = json.Unmarshal(env.Metadata, &info)
	why := strings.Join(info.Explanation, "\n")
	for _, want := range []string{"core.trust_ca_certificates is true", "PKI mode: signed by the CA " + sha256sum(ca.cert.Raw), "No CRL is loaded"} {
		if !strings.Contains(why, want) || info.Method != "pki" {
			t.Errorf("explanation (method %s) lacks %q:\n%s", info.Method, want, why)
		}
	}
	s.call(t, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(ca.crlOf(t, 99))})
	_, env = do(t, c, "GET", base+"/1.0/auth/identities/current", nil)
	_ = json.Unmarshal(env.Metadata, &info)
	if why := strings.Join(info.Explanation, "\n"); !strings.Contains(why, "CRL number 1 of") || !strings.Contains(why, "not revoked") {
		t.Errorf("explanation with a CRL:\n%s", why)
	}
	if code, env := do(t, c, "PATCH", base+"/1.0", api.ServerPut{Config: map[string]string{"core.trust_ca_certificates": "false"}}); code != 200 {
		t.Fatalf("pki client turns the key off: %d %+v", code, env)
	}
	if code, _ := do(t, c, "GET", base+"/1.0/certificates", nil); code != 403 {
		t.Errorf("after turning the key off: %d", code)
	}
	// … stops working in PKI mode, though it stays listed.
	if code, _ := do(t, tlsClient(&selfPair), "GET", base+"/1.0/certificates", nil); code != 403 {
		t.Errorf("non-CA entry in PKI mode: %d", code)
	}
}
