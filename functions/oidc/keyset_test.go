package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustlog/trustlog/functions/oidc"
)

// countingProvider is an OpenID provider on loopback that serves discovery
// and a JWKS it can rotate, and counts the JWKS fetches.
type countingProvider struct {
	issuer  string
	fetches atomic.Int64

	mu   sync.Mutex
	keys []jose.JSONWebKey // public keys published
}

func newCountingProvider(t *testing.T) (*countingProvider, *http.Client) {
	t.Helper()
	p := &countingProvider{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.issuer, "jwks_uri": p.issuer + "/keys",
			"authorization_endpoint": p.issuer + "/authorize", "token_endpoint": p.issuer + "/token",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), p.keys...)}
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1 on a free port
	t.Cleanup(srv.Close)
	p.issuer = srv.URL
	return p, srv.Client()
}

// signer is a signing key with its key id ("" sends no kid).
type signer struct {
	kid string
	key *ecdsa.PrivateKey
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, key: k}
}

// publish adds s's public key to the provider's JWKS.
func (p *countingProvider) publish(s signer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, jose.JSONWebKey{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: "ES256", Use: "sig"})
}

// token returns an access token for client "c" issued by p, signed by s.
func (p *countingProvider) token(t *testing.T, s signer, sub string, now time.Time) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if s.kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), s.kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{"iss": p.issuer, "sub": sub, "aud": "c", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	jws, err := sig.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestKeySetRefreshLimited: forged tokens (random key ids, no key id, or a
// known key id with a wrong signature) cost the provider at most one JWKS
// fetch per refresh interval, whatever their number; a key the provider
// rotates in is picked up once the interval has passed.
func TestKeySetRefreshLimited(t *testing.T) {
	t.Parallel()
	p, client := newCountingProvider(t)
	k1 := newSigner(t, "k1")
	p.publish(k1)
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	v := oidc.New(client, clock)
	m := modelWith(t, map[string]string{"oidc.issuer": p.issuer, "oidc.client.id": "c"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if c, err := v.Verify(ctx, m, p.token(t, k1, "alice", clock())); err != nil || c.Subject != "alice" {
		t.Fatalf("Verify of a token signed by the published key: %+v, %v", c, err)
	}
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for the first token, want 1", n)
	}

	// forge sends n forged tokens from 8 callers at once and checks that
	// every one is refused.
	forge := func(n int) {
		t.Helper()
		toks := make([]string, 0, n)
		for i := range n {
			var s signer
			switch i % 4 {
			case 0, 1: // a key id the provider never published
				kid := make([]byte, 8)
				_, _ = rand.Read(kid)
				s = newSigner(t, hex.EncodeToString(kid))
			case 2: // the published key id, another key
				s = newSigner(t, k1.kid)
			case 3: // no key id at all
				s = newSigner(t, "")
			}
			toks = append(toks, p.token(t, s, "mallory", clock()))
		}
		var wg sync.WaitGroup
		var accepted atomic.Int64
		next := make(chan string)
		for range 8 {
			wg.Go(func() {
				for tok := range next {
					if _, err := v.Verify(ctx, m, tok); err == nil {
						accepted.Add(1)
					}
				}
			})
		}
		for _, tok := range toks {
			next <- tok
		}
		close(next)
		wg.Wait()
		if a := accepted.Load(); a != 0 {
			t.Fatalf("%d forged tokens accepted", a)
		}
	}

	forge(200)
	if n := p.fetches.Load(); n > 2 {
		t.Fatalf("200 forged tokens made %d JWKS fetches in all, want at most 2", n)
	}

	// The provider rotates in a new key. Within the interval since the
	// last fetch its tokens are refused (the documented price of the
	// limit); once the interval has passed the first one fetches the set.
	k2 := newSigner(t, "k2")
	p.publish(k2)
	advance(oidc.KeyRefreshInterval + time.Second)
	before := p.fetches.Load()
	if c, err := v.Verify(ctx, m, p.token(t, k2, "bob", clock())); err != nil || c.Subject != "bob" {
		t.Fatalf("Verify of a token signed by the rotated key after the interval: %+v, %v", c, err)
	}
	if n := p.fetches.Load() - before; n != 1 {
		t.Errorf("the rotated key took %d fetches, want 1", n)
	}
	if _, err := v.Verify(ctx, m, p.token(t, k1, "carol", clock())); err != nil {
		t.Errorf("the old key, still published, no longer verifies: %v", err)
	}

	// Another flood in a new interval: at most one more fetch.
	advance(oidc.KeyRefreshInterval + time.Second)
	before = p.fetches.Load()
	forge(200)
	if n := p.fetches.Load() - before; n > 1 {
		t.Errorf("200 forged tokens in a new interval made %d JWKS fetches, want at most 1", n)
	}
	t.Logf("JWKS fetches in all: %d (3 valid tokens, 400 forged ones, 3 intervals)", p.fetches.Load())
}
