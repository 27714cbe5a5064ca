package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyRefreshInterval is the least time between two fetches of one
// issuer's JWKS.
//
// The rule: a token is checked against the keys held. Only a token that
// no held key verifies and whose key id is not among them (or that names
// none) asks for a fetch, and gets one only if the last fetch started at
// least KeyRefreshInterval ago; one fetch runs at a time and every caller
// waiting for keys shares it. A token naming a key id the set holds but
// failing its check is forged and never causes a fetch. So whatever
// unauthenticated callers send, the provider sees at most one JWKS fetch
// per interval from each instance, and a key the provider rotates in is
// used at the latest one interval after the last fetch (providers publish
// new keys before signing with them, so in practice at once).
const KeyRefreshInterval = time.Minute

// maxJWKS bounds the JWKS document read.
const maxJWKS = 1 << 20

// fetchTimeout bounds one JWKS fetch.
const fetchTimeout = 10 * time.Second

var (
	errSignature = errors.New("oidc: no key of the issuer verifies the token")
	errNoKeys    = errors.New("oidc: the issuer's keys are not available")
)

// joseAlgs are the signing algorithms as go-jose names them.
var joseAlgs = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// keySet is the JWKS of one issuer. It implements go-oidc's KeySet in
// place of go-oidc's RemoteKeySet, which fetches the set again for every
// token it cannot verify. It is safe for concurrent use.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	keys    []jose.JSONWebKey // public signing keys of the last good fetch
	gen     uint64            // counts completed fetches
	fetched time.Time         // when the last fetch started; zero before the first
	running chan struct{}     // closed when the fetch in flight ends; nil if none
	err     error             // the last fetch's error
}

func newKeySet(url string, client *http.Client, now func() time.Time) *keySet {
	return &keySet{url: url, client: client, now: now}
}

// VerifySignature implements go-oidc's KeySet: it returns the payload of
// raw if one of the issuer's keys verifies its signature. The algorithm is
// checked by go-oidc's verifier before.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, joseAlgs)
	if err != nil {
		return nil, fmt.Errorf("oidc: malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("oidc: a token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, gen, err := k.held(ctx)
	if err != nil {
		return nil, err
	}
	if payload, ok := verifyWith(jws, kid, keys); ok {
		return payload, nil
	}
	if kid != "" && slices.ContainsFunc(keys, func(key jose.JSONWebKey) bool { return key.KeyID == kid }) {
		return nil, errSignature // the key it names refused it: a fetch cannot help
	}
	if keys, err = k.refresh(ctx, gen); err != nil {
		return nil, err
	}
	if payload, ok := verifyWith(jws, kid, keys); ok {
		return payload, nil
	}
	return nil, errSignature
}

// verifyWith checks jws against the keys with its key id (all keys if it
// names none).
func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) ([]byte, bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// held returns the keys held and their generation. Before the first fetch
// it fetches them (or waits for the fetch in flight).
func (k *keySet) held(ctx context.Context) ([]jose.JSONWebKey, uint64, error) {
	k.mu.Lock()
	if k.gen > 0 { // a fetch has completed (if it failed, refresh decides when to try again)
		keys, gen := k.keys, k.gen
		k.mu.Unlock()
		return keys, gen, nil
	}
	k.mu.Unlock()
	keys, err := k.refresh(ctx, 0)
	k.mu.Lock()
	defer k.mu.Unlock()
	return keys, k.gen, err
}

// refresh returns keys newer than generation gen: those of a fetch that
// completed since, of the fetch in flight, or of a new fetch if the last
// one started at least KeyRefreshInterval ago. Otherwise it returns the
// keys held, without asking the provider.
func (k *keySet) refresh(ctx context.Context, gen uint64) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if k.gen != gen && k.running == nil {
		keys := k.keys
		k.mu.Unlock()
		return keys, nil
	}
	if k.running == nil {
		if !k.fetched.IsZero() && k.now().Sub(k.fetched) < KeyRefreshInterval {
			keys, err := k.keys, k.err
			k.mu.Unlock()
			if keys == nil && err != nil {
				return nil, errNoKeys
			}
			return keys, nil
		}
		k.fetched = k.now()
		k.running = make(chan struct{})
		go k.fetch(k.running)
	}
	running := k.running
	k.mu.Unlock()
	select {
	case <-running:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil && k.err != nil {
		return nil, errNoKeys
	}
	return k.keys, nil
}

// fetch runs one fetch in the background (a caller that gives up does not
// waste it for the others) and closes done when it ends. A failed fetch
// keeps the keys held.
func (k *keySet) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	keys, err := k.get(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.err = err
	if err == nil {
		k.keys = keys
	}
	k.gen++
	k.running = nil
	close(done)
}

// get fetches and parses the JWKS. Keys for another use than signing,
// with an algorithm Trustlog does not accept, or of a type go-jose does
// not know are skipped, as go-oidc does.
func (k *keySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oidc: jwks: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS))
	if err != nil {
		return nil, err
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("oidc: jwks: %w", err)
	}
	keys := []jose.JSONWebKey{}
	for _, raw := range doc.Keys {
		var meta struct {
			Alg string `json:"alg"`
			Use string `json:"use"`
		}
		if json.Unmarshal(raw, &meta) != nil || (meta.Use != "" && meta.Use != "sig") ||
			(meta.Alg != "" && !slices.Contains(signingAlgs, meta.Alg)) {
			continue
		}
		var key jose.JSONWebKey
		if err := json.Unmarshal(raw, &key); err != nil || !key.Valid() {
			continue
		}
		if !key.IsPublic() {
			key = key.Public()
		}
		keys = append(keys, key)
	}
	return keys, nil
}
