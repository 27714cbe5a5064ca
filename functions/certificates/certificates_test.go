package certificates_test

// Certificate material and validity rules. The routes themselves are
// tested over real TLS through the assembled API in functions/service.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/certificates"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

var now = time.Date(2026, 7, 8, 9, 10, 11, 0, time.UTC)

// keys caches generated keys: RSA generation is slow under -race.
var keys = struct {
	sync.Mutex
	m map[string]crypto.Signer
}{m: map[string]crypto.Signer{}}

func key(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	keys.Lock()
	defer keys.Unlock()
	if k, ok := keys.m[kind]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil || k == nil {
		t.Fatalf("key %s: %v", kind, err)
	}
	keys.m[kind] = k
	return k
}

// makeCert makes a self-signed certificate with a key of kind, valid in [nb, na].
func makeCert(t *testing.T, kind, cn string, nb, na time.Time) *x509.Certificate {
	t.Helper()
	k := key(t, kind)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// wantAPIError checks err is a *response.Error with status and a message
// starting with msg.
func wantAPIError(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var e *response.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *response.Error", err, err)
	}
	if e.Status != status || !strings.HasPrefix(e.Message, msg) {
		t.Fatalf("error = %d %q, want %d %q...", e.Status, e.Message, status, msg)
	}
}

// TestParseCertificate covers the material POST accepts: PEM or base64 DER.
func TestParseCertificate(t *testing.T) {
	t.Parallel()
	c := makeCert(t, "p384", "parse", now.Add(-time.Hour), now.Add(time.Hour))
	b64 := base64.StdEncoding.EncodeToString(c.Raw)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not shown")}))
	for _, tc := range []struct {
		name    string
		in      string
		wantMsg string // "" means it parses to c
	}{
		{name: "ok/base64 der", in: b64},
		{name: "ok/base64 der with surrounding space", in: "\n " + b64 + " \n"},
		{name: "ok/pem", in: pemOf(c)},
		{name: "ok/pem with leading space", in: "  " + pemOf(c)},
		{name: "ok/pem with trailing text", in: pemOf(c) + "trailing"},
		{name: "fail/invalid base64", in: "%%%not base64", wantMsg: "Invalid certificate material: illegal base64 data"},
		{name: "fail/url-safe base64 is not accepted", in: base64.RawURLEncoding.EncodeToString(c.Raw) + "_-",
			wantMsg: "Invalid certificate material: illegal base64 data"},
		{name: "fail/garbage der", in: base64.StdEncoding.EncodeToString([]byte("not a certificate")),
			wantMsg: "Invalid certificate material: x509: malformed certificate"},
		{name: "fail/truncated der", in: base64.StdEncoding.EncodeToString(c.Raw[:len(c.Raw)/2]),
			wantMsg: "Invalid certificate material: "},
		{name: "fail/empty", in: "", wantMsg: "Invalid certificate material: "},
		{name: "fail/pem of a key", in: keyPEM, wantMsg: "Invalid PEM encoded certificate"},
		{name: "fail/broken pem", in: "-----BEGIN CERTIFICATE-----\nAAAA", wantMsg: "Invalid PEM encoded certificate"},
		{name: "fail/pem of garbage", in: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})),
			wantMsg: "Invalid certificate material: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := certificates.ParseCertificate(tc.in)
			if tc.wantMsg != "" {
				wantAPIError(t, err, http.StatusBadRequest, tc.wantMsg)
				if strings.Contains(err.Error(), "not shown") {
					t.Errorf("error repeats the input: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCertificate: %v", err)
			}
			if !got.Equal(c) {
				t.Errorf("parsed another certificate")
			}
		})
	}
}

// TestParsePEM checks PUT and PATCH take PEM only.
func TestParsePEM(t *testing.T) {
	t.Parallel()
	c := makeCert(t, "p384", "pem", now.Add(-time.Hour), now.Add(time.Hour))
	if got, err := certificates.ParsePEM(pemOf(c)); err != nil || !got.Equal(c) {
		t.Fatalf("ParsePEM of a PEM certificate = %v", err)
	}
	_, err := certificates.ParsePEM(base64.StdEncoding.EncodeToString(c.Raw))
	wantAPIError(t, err, http.StatusBadRequest, "Invalid PEM encoded certificate")
	if got := certificates.EncodePEM(c); got != pemOf(c) {
		t.Errorf("EncodePEM = %q", got)
	}
}

// TestCheckValidity covers the date bounds and key strength rules, with
// LXD's and Incus's messages.
func TestCheckValidity(t *testing.T) {
	t.Parallel()
	nb, na := now.Add(-time.Hour), now.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		kind    string
		nb, na  time.Time
		at      time.Time
		wantMsg string
	}{
		{name: "ok/p384", kind: "p384", nb: nb, na: na, at: now},
		{name: "ok/p256", kind: "p256", nb: nb, na: na, at: now},
		{name: "ok/rsa 2048", kind: "rsa2048", nb: nb, na: na, at: now},
		{name: "ok/ed25519", kind: "ed25519", nb: nb, na: na, at: now},
		{name: "ok/at notBefore", kind: "p384", nb: nb, na: na, at: nb},
		{name: "ok/at notAfter", kind: "p384", nb: nb, na: na, at: na},
		{name: "fail/rsa 1024", kind: "rsa1024", nb: nb, na: na, at: now, wantMsg: "RSA key is too weak (minimum of 2048bit)"},
		{name: "fail/expired", kind: "p384", nb: nb, na: na, at: na.Add(time.Second), wantMsg: "The provided certificate is expired"},
		{name: "fail/not yet valid", kind: "p384", nb: nb, na: na, at: nb.Add(-time.Second), wantMsg: "The provided certificate isn't valid yet"},
		// Dates are checked before the key.
		{name: "fail/expired weak key", kind: "rsa1024", nb: nb, na: na, at: na.Add(time.Hour), wantMsg: "The provided certificate is expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := certificates.CheckValidity(makeCert(t, tc.kind, tc.name, tc.nb, tc.na), tc.at)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckValidity: %v", err)
				}
				return
			}
			wantAPIError(t, err, http.StatusBadRequest, tc.wantMsg)
		})
	}
}

// TestToAPI checks the wire form of an entry: projects is [] when empty.
func TestToAPI(t *testing.T) {
	t.Parallel()
	c := projections.Certificate{Fingerprint: strings.Repeat("ab", 32), Name: "n", Type: "client", PEM: "pem", Description: "d"}
	want := api.Certificate{Name: "n", Type: "client", Projects: []string{}, Certificate: "pem", Description: "d", Fingerprint: c.Fingerprint}
	if diff := cmp.Diff(want, certificates.ToAPI(&c)); diff != "" {
		t.Errorf("ToAPI (-want +got):\n%s", diff)
	}
	c.Restricted, c.Projects = true, []string{"a", "b"}
	if got := certificates.ToAPI(&c); !got.Restricted || !cmp.Equal(got.Projects, []string{"a", "b"}) {
		t.Errorf("ToAPI of a restricted entry = %+v", got)
	}
	// The wire form shares nothing with the entry: PATCH decodes the
	// request body into it, and the read model must not change.
	got := certificates.ToAPI(&c)
	if err := json.Unmarshal([]byte(`["b","a"]`), &got.Projects); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(c.Projects, []string{"a", "b"}) {
		t.Errorf("decoding into ToAPI's projects changed the entry: %v", c.Projects)
	}
	if got := certificates.URL(c.Fingerprint); got != "/1.0/certificates/"+c.Fingerprint {
		t.Errorf("URL = %q", got)
	}
}
