package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// bearerToken returns the JWT a request carries in "Authorization: Bearer"
// (scheme case-insensitive) or, without that header, in ?access_token=.
func bearerToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", false
		}
		return tok, true
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		return tok, true
	}
	return "", false
}

// jwtClaims are the registered claims Trustlog reads.
type jwtClaims struct {
	Sub string          `json:"sub"`
	Iss string          `json:"iss"`
	Exp json.Number     `json:"exp"`
	Nbf json.Number     `json:"nbf"`
	Aud json.RawMessage `json:"aud"`
}

// errJWT is the one error of the JWT checks; the reason is never shown.
var errJWT = errors.New("authn: bearer token refused")

// parseClientJWT checks the form and time claims of a certificate-signed
// JWT (Incus's "JWT from a client certificate") and returns its subject,
// expiry and the signed bytes, without verifying the signature. exp is
// required (Incus does not require it); iss must be absent, as tokens with an
// issuer belong to OIDC.
func parseClientJWT(tok string, now time.Time) (sub, alg string, exp time.Time, signed, sig []byte, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", "", time.Time{}, nil, nil, errJWT
	}
	rawHeader, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	rawClaims, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", "", time.Time{}, nil, nil, errJWT
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims jwtClaims
	if json.Unmarshal(rawHeader, &header) != nil || json.Unmarshal(rawClaims, &claims) != nil {
		return "", "", time.Time{}, nil, nil, errJWT
	}
	if claims.Iss != "" || claims.Sub == "" || claims.Exp == "" {
		return "", "", time.Time{}, nil, nil, errJWT
	}
	expSec, err := claims.Exp.Int64()
	if err != nil {
		return "", "", time.Time{}, nil, nil, errJWT
	}
	exp = time.Unix(expSec, 0)
	if !now.Before(exp) {
		return "", "", time.Time{}, nil, nil, errJWT
	}
	if claims.Nbf != "" {
		nbf, err := claims.Nbf.Int64()
		if err != nil || now.Before(time.Unix(nbf, 0)) {
			return "", "", time.Time{}, nil, nil, errJWT
		}
	}
	return strings.ToLower(claims.Sub), header.Alg, exp, []byte(parts[0] + "." + parts[1]), sig, nil
}

// verifyJWS checks a JWS signature with the certificate's public key, for
// the algorithms that key type allows. HMAC and "none" are always refused.
func verifyJWS(cert *x509.Certificate, alg string, signed, sig []byte) error {
	if len(alg) < 5 && alg != "EdDSA" {
		return errJWT
	}
	var h crypto.Hash
	switch alg[len(alg)-3:] {
	case "256":
		h = crypto.SHA256
	case "384":
		h = crypto.SHA384
	case "512":
		h = crypto.SHA512
	}
	digest := func() []byte {
		var d hash.Hash
		switch h {
		case crypto.SHA256:
			d = sha256.New()
		case crypto.SHA384:
			d = sha512.New384()
		default:
			d = sha512.New()
		}
		d.Write(signed)
		return d.Sum(nil)
	}
	switch key := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		size := (key.Curve.Params().BitSize + 7) / 8
		want := map[string]int{"ES256": 32, "ES384": 48, "ES512": 66}[alg]
		if want == 0 || want != size || len(sig) != 2*size {
			return errJWT
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(key, digest(), r, s) {
			return errJWT
		}
		return nil
	case *rsa.PublicKey:
		switch {
		case strings.HasPrefix(alg, "RS") && h != 0:
			if rsa.VerifyPKCS1v15(key, h, digest(), sig) != nil {
				return errJWT
			}
			return nil
		case strings.HasPrefix(alg, "PS") && h != 0:
			if rsa.VerifyPSS(key, h, digest(), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) != nil {
				return errJWT
			}
			return nil
		}
	case ed25519.PublicKey:
		if alg == "EdDSA" && ed25519.Verify(key, signed, sig) {
			return nil
		}
	}
	return errJWT
}

// jwtCacheSize bounds the cache of verified bearer tokens.
const jwtCacheSize = 50_000

// jwtCache remembers verified tokens by their SHA-256 until they expire,
// so a signature (≈ 0.4 ms for P-384) is checked once per token, not per
// request. The trust checks of the certificate still run on every request.
type jwtCache struct {
	mu   sync.Mutex
	seen map[[32]byte]jwtEntry
}

type jwtEntry struct {
	sub string
	exp time.Time
}

func (c *jwtCache) get(key [32]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.seen[key]
	if !ok || !now.Before(e.exp) {
		return "", false
	}
	return e.sub, true
}

func (c *jwtCache) put(key [32]byte, e jwtEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil || len(c.seen) >= jwtCacheSize {
		c.seen = map[[32]byte]jwtEntry{}
	}
	c.seen[key] = e
}
