package authn_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/projections"
)

type fixedModel struct{ m *projections.Model }

func (f fixedModel) Snapshot() *projections.Model { return f.m }

type signer struct {
	key  crypto.Signer
	cert *x509.Certificate
	fp   string
}

func newSigner(t *testing.T, key crypto.Signer) signer {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "jwt"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(der)
	return signer{key: key, cert: c, fp: hex.EncodeToString(sum[:])}
}

// model returns a read model trusting the given certificates.
func model(t *testing.T, typ string, restricted bool, signers ...signer) *projections.Model {
	t.Helper()
	b := projections.NewBuilder(nil)
	for i, s := range signers {
		env, err := events.New(fmt.Sprint(i), "/test", time.Now(), events.Actor{}, events.CertificateTrusted{
			Fingerprint: s.fp, Name: "n", Type: typ, Restricted: restricted, Projects: []string{},
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw}))})
		if err != nil {
			t.Fatal(err)
		}
		env.PrevHash = b.Hash()
		raw, _ := env.Marshal()
		if err := b.Apply(events.Record{Seq: uint64(i + 1), Raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Model()
}

func b64(v []byte) string { return base64.RawURLEncoding.EncodeToString(v) }

// makeJWT signs claims with s under alg.
func makeJWT(t *testing.T, s signer, alg string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	signed := b64(h) + "." + b64(c)
	var sig []byte
	switch alg {
	case "ES256", "ES384", "ES512":
		hf := map[string]crypto.Hash{"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512}[alg]
		d := hf.New()
		d.Write([]byte(signed))
		k := s.key.(*ecdsa.PrivateKey)
		r, ss, err := ecdsa.Sign(rand.Reader, k, d.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = append(r.FillBytes(make([]byte, size)), ss.FillBytes(make([]byte, size))...)
	case "RS256", "PS256":
		d := sha256.Sum256([]byte(signed))
		var err error
		if alg == "RS256" {
			sig, err = rsa.SignPKCS1v15(rand.Reader, s.key.(*rsa.PrivateKey), crypto.SHA256, d[:])
		} else {
			sig, err = rsa.SignPSS(rand.Reader, s.key.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		if err != nil {
			t.Fatal(err)
		}
	case "RS512":
		d := sha512.Sum512([]byte(signed))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, s.key.(*rsa.PrivateKey), crypto.SHA512, d[:])
	case "EdDSA":
		sig = ed25519.Sign(s.key.(ed25519.PrivateKey), []byte(signed))
	case "HS256":
		m := hmac.New(sha256.New, []byte(s.fp))
		m.Write([]byte(signed))
		sig = m.Sum(nil)
	case "none":
	}
	return signed + "." + b64(sig)
}

func TestBearerJWT(t *testing.T) {
	t.Parallel()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ec, rs, ed := newSigner(t, p384), newSigner(t, rsaKey), newSigner(t, edKey)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	stranger := newSigner(t, otherKey)
	now := time.Now()
	valid := func(s signer) map[string]any {
		return map[string]any{"sub": s.fp, "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	with := func(c map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range c {
			out[kk] = vv
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	trusted := model(t, events.CertificateTypeClient, false, ec, rs, ed)
	for _, tc := range []struct {
		name  string
		token string
		query bool
		m     *projections.Model
		want  bool
	}{
		{name: "ok/ES384 header", token: makeJWT(t, ec, "ES384", valid(ec)), want: true},
		{name: "ok/ES384 query", token: makeJWT(t, ec, "ES384", valid(ec)), query: true, want: true},
		{name: "ok/RS256", token: makeJWT(t, rs, "RS256", valid(rs)), want: true},
		{name: "ok/RS512", token: makeJWT(t, rs, "RS512", valid(rs)), want: true},
		{name: "ok/PS256", token: makeJWT(t, rs, "PS256", valid(rs)), want: true},
		{name: "ok/EdDSA", token: makeJWT(t, ed, "EdDSA", valid(ed)), want: true},
		{name: "fail/garbage", token: "1234567"},
		{name: "fail/HS256 with the fingerprint as key", token: makeJWT(t, ec, "HS256", valid(ec))},
		{name: "fail/alg none", token: makeJWT(t, ec, "none", valid(ec))},
		{name: "fail/ES256 with a P-384 key", token: makeJWTAlgSwap(t, ec, valid(ec))},
		{name: "fail/expired", token: makeJWT(t, ec, "ES384", with(valid(ec), "exp", now.Add(-time.Minute).Unix()))},
		{name: "fail/no exp", token: makeJWT(t, ec, "ES384", with(valid(ec), "exp", nil))},
		{name: "fail/not yet valid", token: makeJWT(t, ec, "ES384", with(valid(ec), "nbf", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()))},
		{name: "fail/issuer present", token: makeJWT(t, ec, "ES384", with(valid(ec), "iss", "https://idp.example"))},
		{name: "fail/untrusted subject", token: makeJWT(t, stranger, "ES384", valid(stranger))},
		{name: "fail/signed by another key", token: makeJWT(t, stranger, "ES384", valid(ec))},
		{name: "fail/tampered", token: tamper(makeJWT(t, ec, "ES384", valid(ec)))},
		{name: "fail/removed certificate", token: makeJWT(t, ec, "ES384", valid(ec)), m: model(t, events.CertificateTypeClient, false, rs)},
		{name: "fail/metrics certificate", token: makeJWT(t, ec, "ES384", valid(ec)), m: model(t, events.CertificateTypeMetrics, false, ec)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := trusted
			if tc.m != nil {
				m = tc.m
			}
			a := authn.New(fixedModel{m}, nil)
			r := httptest.NewRequest("GET", "https://example/1.0", nil)
			if tc.query {
				r = httptest.NewRequest("GET", "https://example/1.0?access_token="+tc.token, nil)
			} else {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			for range 2 { // the second call is answered from the cache
				id := a.Authenticate(r)
				if id.Trusted != tc.want {
					t.Fatalf("trusted = %v, want %v", id.Trusted, tc.want)
				}
				if tc.want && (id.Method != authn.MethodTLS || id.Name != id.Fingerprint || id.Fingerprint == "") {
					t.Fatalf("identity = %+v", id)
				}
			}
		})
	}
}

// makeJWTAlgSwap signs with ES384 but names ES256 in the header.
func makeJWTAlgSwap(t *testing.T, s signer, claims map[string]any) string {
	tok := makeJWT(t, s, "ES384", claims)
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT"})
	parts := splitDots(tok)
	return b64(h) + "." + parts[1] + "." + parts[2]
}

func splitDots(s string) [3]string {
	var out [3]string
	i := 0
	for _, c := range s {
		if c == '.' {
			i++
			continue
		}
		out[i] += string(c)
	}
	return out
}

func tamper(tok string) string {
	p := splitDots(tok)
	claims, _ := base64.RawURLEncoding.DecodeString(p[1])
	var m map[string]any
	json.Unmarshal(claims, &m)
	m["exp"] = time.Now().Add(time.Hour).Unix()
	c, _ := json.Marshal(m)
	return p[0] + "." + b64(c) + "." + p[2]
}

// TestBearerRestricted: a bearer token carries the certificate's
// restrictions.
func TestBearerRestricted(t *testing.T) {
	t.Parallel()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := newSigner(t, k)
	a := authn.New(fixedModel{model(t, events.CertificateTypeClient, true, s)}, nil)
	r := httptest.NewRequest("GET", "https://example/1.0", nil)
	r.Header.Set("Authorization", "bearer "+makeJWT(t, s, "ES256", map[string]any{"sub": s.fp, "exp": time.Now().Add(time.Minute).Unix()}))
	id := a.Authenticate(r)
	if !id.Trusted || !id.Restricted || id.Admin() {
		t.Fatalf("identity = %+v", id)
	}
}
