// Package oidc verifies OpenID Connect access tokens for authn, reads the
// oidc.* configuration keys, validates an issuer by discovery, and writes
// the challenge headers the incus and lxc clients start their device flow
// from.
//
// Access tokens must be JWTs (as Incus requires). They are verified
// offline with coreos/go-oidc: exact issuer, signature through the issuer's
// JWKS, expiry, and the audience. The JWKS is fetched lazily and refreshed
// for a token with an unknown key id at most once per KeyRefreshInterval,
// so forged tokens cannot make the server hammer the provider. A verified
// token is remembered by its SHA-256 until it expires, so the signature is
// checked once per token, not per request.
package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/projections"
)

// Configuration keys. Incus names issuer, client id, audience, scopes and
// claim; LXD adds the device client id and the groups claim. Trustlog adds
// default_access.
const (
	KeyIssuer         = "oidc.issuer"
	KeyClientID       = "oidc.client.id"
	KeyAudience       = "oidc.audience"
	KeyScopes         = "oidc.scopes"
	KeyClaim          = "oidc.claim"
	KeyDeviceClientID = "oidc.device.client.id"
	KeyGroupsClaim    = "oidc.groups.claim"
	KeyDefaultAccess  = "oidc.default_access"
)

// DefaultScopes are the scopes a client requests when oidc.scopes is unset
// (Incus's default).
var DefaultScopes = []string{"openid", "offline_access"}

// Settings is the OIDC configuration of a model.
type Settings struct {
	Issuer         string
	ClientID       string
	DeviceClientID string
	Audience       string
	Scopes         []string
	Claim          string
	GroupsClaim    string
	// DefaultAccess is what an identity without a grant may do:
	// events.AccessNone (the default, as LXD) or events.AccessAdmin (as Incus).
	DefaultAccess string
}

// SettingsOf reads the oidc.* keys of m.
func SettingsOf(m *projections.Model) Settings {
	s := Settings{
		Issuer:         m.ConfigValue(KeyIssuer),
		ClientID:       m.ConfigValue(KeyClientID),
		DeviceClientID: m.ConfigValue(KeyDeviceClientID),
		Audience:       m.ConfigValue(KeyAudience),
		Scopes:         SplitScopes(m.ConfigValue(KeyScopes)),
		Claim:          m.ConfigValue(KeyClaim),
		GroupsClaim:    m.ConfigValue(KeyGroupsClaim),
		DefaultAccess:  m.ConfigValue(KeyDefaultAccess),
	}
	if len(s.Scopes) == 0 {
		s.Scopes = DefaultScopes
	}
	if s.DefaultAccess == "" {
		s.DefaultAccess = events.AccessNone
	}
	return s
}

// Enabled reports whether OIDC is configured: an issuer and a client id.
func (s Settings) Enabled() bool { return s.Issuer != "" && s.ClientID != "" }

// deviceClientID is the client the CLI device flow uses.
func (s Settings) deviceClientID() string {
	if s.DeviceClientID != "" {
		return s.DeviceClientID
	}
	return s.ClientID
}

// Challenge writes the headers that tell a client where to log in: the
// Incus family (scopes comma-joined) and the LXD family (the device client
// id, the groups claim, scopes as a JSON array).
func (s Settings) Challenge(h http.Header) {
	h.Set("X-Incus-OIDC-issuer", s.Issuer)
	h.Set("X-Incus-OIDC-clientid", s.ClientID)
	h.Set("X-Incus-OIDC-audience", s.Audience)
	h.Set("X-Incus-OIDC-scopes", strings.Join(s.Scopes, ","))
	scopes, _ := json.Marshal(s.Scopes)
	h.Set("X-LXD-OIDC-issuer", s.Issuer)
	h.Set("X-LXD-OIDC-clientid", s.deviceClientID())
	h.Set("X-LXD-OIDC-audience", s.Audience)
	h.Set("X-LXD-OIDC-groups-claim", s.GroupsClaim)
	h.Set("X-LXD-OIDC-scopes", string(scopes))
}

// SplitScopes splits an oidc.scopes value on commas and spaces.
func SplitScopes(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

// signingAlgs are the algorithms an access token may be signed with: every
// asymmetric JWS algorithm. HMAC and "none" are never accepted.
var signingAlgs = []string{
	gooidc.RS256, gooidc.RS384, gooidc.RS512, gooidc.ES256, gooidc.ES384, gooidc.ES512,
	gooidc.PS256, gooidc.PS384, gooidc.PS512, gooidc.EdDSA,
}

// errToken is the one error Verify returns for a refused token: the
// reason stays out of responses and logs, as does the token.
var errToken = errors.New("oidc: access token refused")

// Verifier verifies access tokens against the configured issuer. It is
// safe for concurrent use.
type Verifier struct {
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	issuers map[string]*issuer

	cacheMu sync.Mutex
	cache   map[[32]byte]cached
	cacheOf cacheKey // the settings the cache was filled under
}

// cacheKey is the part of the settings a verified token depends on.
type cacheKey struct {
	issuer, clientID, deviceClientID, audience, claim, groupsClaim string
}

func cacheKeyOf(m *projections.Model) cacheKey {
	return cacheKey{
		issuer: m.ConfigValue(KeyIssuer), clientID: m.ConfigValue(KeyClientID), deviceClientID: m.ConfigValue(KeyDeviceClientID),
		audience: m.ConfigValue(KeyAudience), claim: m.ConfigValue(KeyClaim), groupsClaim: m.ConfigValue(KeyGroupsClaim),
	}
}

// issuer is the discovery state of one issuer URL.
type issuer struct {
	provider *gooidc.Provider
	keys     *keySet // the provider's JWKS, set with provider
	err      error
	retry    time.Time     // when a failed discovery may be tried again
	backoff  time.Duration // the wait after the last failure
	running  chan struct{} // closed when the discovery in flight ends; nil if none
}

type cached struct {
	claims authn.OIDCClaims
	// notBefore is the nbf claim less go-oidc's leeway (zero if absent):
	// a clock set back must not find the token valid in the cache.
	notBefore time.Time
}

// nbfLeeway is the clock skew go-oidc tolerates on nbf.
const nbfLeeway = 5 * time.Minute

// cacheSize bounds the verified-token cache.
const cacheSize = 50_000

// New returns a Verifier that reaches identity providers with client (nil
// means a client with a 10 s timeout) and checks expiry against now (nil
// means time.Now).
func New(client *http.Client, now func() time.Time) *Verifier {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{client: client, now: now, issuers: map[string]*issuer{}}
}

// Discover fetches the discovery document of issuerURL and checks that it
// names exactly that issuer and a JWKS. It is how a new oidc.issuer is
// validated before it is recorded.
func (v *Verifier) Discover(ctx context.Context, issuerURL string) error {
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, v.client), 10*time.Second)
	defer cancel()
	p, err := gooidc.NewProvider(ctx, issuerURL)
	if err != nil {
		return fmt.Errorf("discovery of %q failed: %w", issuerURL, err)
	}
	jwks, err := jwksOf(p)
	if err != nil {
		return fmt.Errorf("discovery of %q failed: %w", issuerURL, err)
	}
	v.mu.Lock()
	if st := v.issuers[issuerURL]; st == nil || st.running == nil {
		v.issuers[issuerURL] = &issuer{provider: p, keys: newKeySet(jwks, v.client, v.now)}
	}
	v.mu.Unlock()
	return nil
}

// jwksOf returns the jwks_uri of a discovered provider.
func jwksOf(p *gooidc.Provider) (string, error) {
	var doc struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil || doc.JWKS == "" {
		return "", errors.New("the provider names no jwks_uri")
	}
	return doc.JWKS, nil
}

// provider returns the key set of the discovered provider of issuerURL.
// It discovers it on first use and, after a failure, again only once the
// backoff (doubling from 5 s to 5 min) has passed, so a provider that is
// down is not hammered. One discovery runs at a time per issuer; callers
// wait for it as long as ctx allows.
func (v *Verifier) provider(ctx context.Context, issuerURL string) (*keySet, error) {
	v.mu.Lock()
	st := v.issuers[issuerURL]
	if st == nil {
		st = &issuer{}
		v.issuers[issuerURL] = st
	}
	if st.provider != nil {
		v.mu.Unlock()
		return st.keys, nil
	}
	if st.running == nil && !v.now().Before(st.retry) {
		st.running = make(chan struct{})
		go v.discover(issuerURL, st)
	}
	running, err := st.running, st.err
	v.mu.Unlock()
	if running == nil {
		return nil, err
	}
	select {
	case <-running:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return st.keys, st.err
}

// discover runs one discovery of st in the background.
func (v *Verifier) discover(issuerURL string, st *issuer) {
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(context.Background(), v.client), 10*time.Second)
	defer cancel()
	p, err := gooidc.NewProvider(ctx, issuerURL)
	var jwks string
	if err == nil {
		jwks, err = jwksOf(p)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		st.backoff = min(max(2*st.backoff, 5*time.Second), 5*time.Minute)
		st.err, st.retry = err, v.now().Add(st.backoff)
	} else {
		st.provider, st.keys, st.err, st.backoff = p, newKeySet(jwks, v.client, v.now), nil, 0
	}
	close(st.running)
	st.running = nil
}

// Ready reports whether the issuer configured in m has been discovered, so
// that "oidc" can be offered in auth_methods (as LXD, which drops it while
// the provider is unreachable). It waits at most readyWait for a discovery
// in flight; after a failure it answers at once until the backoff ends.
func (v *Verifier) Ready(ctx context.Context, m *projections.Model) bool {
	if !v.Enabled(m) { // two lookups: GET /1.0 asks on every call
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	keys, _ := v.provider(ctx, m.ConfigValue(KeyIssuer))
	return keys != nil
}

// readyWait bounds how long GET /1.0 waits for a discovery in flight.
const readyWait = 2 * time.Second

// Enabled implements authn.OIDC.
func (v *Verifier) Enabled(m *projections.Model) bool {
	return m.ConfigValue(KeyIssuer) != "" && m.ConfigValue(KeyClientID) != ""
}

// Cached implements authn.OIDC: the claims of a token verified earlier
// under the same settings and still valid, found by the SHA-256 of its
// text. It never blocks and does no I/O.
func (v *Verifier) Cached(m *projections.Model, sum [32]byte) (authn.OIDCClaims, bool) {
	return v.cached(sum, cacheKeyOf(m), v.now())
}

// Verify implements authn.OIDC: it checks raw under the OIDC configuration
// of m and returns its claims.
func (v *Verifier) Verify(ctx context.Context, m *projections.Model, raw string) (authn.OIDCClaims, error) {
	s := SettingsOf(m)
	if !s.Enabled() || raw == "" {
		return authn.OIDCClaims{}, errToken
	}
	now := v.now()
	key := sha256.Sum256([]byte(raw))
	setKey := cacheKeyOf(m)
	if c, ok := v.cached(key, setKey, now); ok {
		return c, nil
	}
	keys, err := v.provider(ctx, s.Issuer)
	if err != nil {
		return authn.OIDCClaims{}, errToken
	}
	// The audience: oidc.audience when set, else the client ids the
	// tokens are issued to. The client-id check is never skipped.
	auds := []string{s.Audience}
	if s.Audience == "" {
		auds = []string{s.ClientID}
		if s.DeviceClientID != "" && s.DeviceClientID != s.ClientID {
			auds = append(auds, s.DeviceClientID)
		}
	}
	var tok *gooidc.IDToken
	for _, aud := range auds {
		tok, err = gooidc.NewVerifier(s.Issuer, keys, &gooidc.Config{ClientID: aud, SupportedSigningAlgs: signingAlgs, Now: v.now}).Verify(ctx, raw)
		if err == nil {
			break
		}
	}
	if err != nil {
		if _, expired := errors.AsType[*gooidc.TokenExpiredError](err); expired {
			return authn.OIDCClaims{}, authn.ErrTokenExpired
		}
		return authn.OIDCClaims{}, errToken
	}
	var all map[string]any
	if err := tok.Claims(&all); err != nil {
		return authn.OIDCClaims{}, errToken
	}
	c := authn.OIDCClaims{Issuer: tok.Issuer, Subject: tok.Subject, Expiry: tok.Expiry,
		IdentityID: projections.OIDCIdentityID(tok.Issuer, tok.Subject)}
	if tok.Subject == "" {
		return authn.OIDCClaims{}, errToken
	}
	switch {
	case s.Claim != "":
		name, _ := all[s.Claim].(string)
		if name == "" {
			// As Incus: a configured claim that is missing or not a
			// string leaves the request unauthenticated.
			return authn.OIDCClaims{}, errToken
		}
		c.Username, c.UsernameClaim = name, s.Claim
	case stringClaim(all, "email") != "":
		c.Username, c.UsernameClaim = stringClaim(all, "email"), "email"
	default:
		c.Username, c.UsernameClaim = tok.Subject, "sub"
	}
	if s.GroupsClaim != "" {
		c.Groups = stringsClaim(all[s.GroupsClaim])
	}
	var nbf time.Time
	if n, ok := all["nbf"].(float64); ok {
		nbf = time.Unix(int64(n), 0).Add(-nbfLeeway)
	}
	v.remember(key, setKey, cached{claims: c, notBefore: nbf})
	return c, nil
}

func stringClaim(all map[string]any, name string) string {
	s, _ := all[name].(string)
	return s
}

// stringsClaim reads a claim that is a list of strings or one string.
func stringsClaim(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func (v *Verifier) cached(key [32]byte, setKey cacheKey, now time.Time) (authn.OIDCClaims, bool) {
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if v.cacheOf != setKey {
		return authn.OIDCClaims{}, false
	}
	c, ok := v.cache[key]
	if !ok || !now.Before(c.claims.Expiry) || now.Before(c.notBefore) {
		return authn.OIDCClaims{}, false
	}
	return c.claims, true
}

func (v *Verifier) remember(key [32]byte, setKey cacheKey, c cached) {
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if v.cacheOf != setKey || v.cache == nil || len(v.cache) >= cacheSize {
		v.cache, v.cacheOf = map[[32]byte]cached{}, setKey
	}
	v.cache[key] = c
}
