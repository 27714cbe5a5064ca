// Package authn turns the credentials of a request into an Identity. It is
// the one place that decides who a caller is; every handler goes through it.
//
// The TLS peer certificate comes from the TLS connection the host
// terminated (or, in Lambda mode, from the gateway's request context placed
// in the request context by the host), never from a header the client sent.
package authn

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// Authentication methods, as reported in auth_user_method.
const (
	MethodTLS     = "tls"
	MethodUnix    = "unix"
	MethodCluster = "cluster"
	// MethodPKI is a CA-signed certificate trusted without an entry
	// (core.trust_ca_certificates), as LXD reports it.
	MethodPKI = "pki"
	// MethodOIDC is a user holding an access token of the OIDC issuer.
	MethodOIDC = "oidc"
)

// Where an identity's access comes from, for explanations.
const (
	// AccessFromGrant is an administrator's grant (IdentityGranted).
	AccessFromGrant = "grant"
	// AccessFromDefault is the default for identities without a grant
	// (oidc.default_access for OIDC users; nothing for TLS identities).
	AccessFromDefault = "default"
)

// Identity is the authenticated caller of one request.
type Identity struct {
	// Trusted is false for an anonymous or unknown caller.
	Trusted bool
	// Method is how the caller authenticated ("tls", "unix", "cluster"); "" if untrusted.
	Method string
	// Name is the auth_user_name: the certificate fingerprint for TLS, the
	// local user name on the unix socket.
	Name string
	// Fingerprint is the fingerprint of the TLS client certificate, trusted
	// or not; "" when none was presented.
	Fingerprint string
	// CertificateName is the name of the matching trust-store entry.
	CertificateName string
	// Type is the trust-store entry's type ("client", "server", "metrics").
	Type string
	// Restricted and Projects carry the entry's restriction. An unrestricted
	// trusted client, a server certificate and the unix socket are admins.
	Restricted bool
	Projects   []string
	// Address is the caller's address (host part of RemoteAddr).
	Address string
	// PeerCertificate is the leaf certificate the caller presented, if any.
	PeerCertificate *x509.Certificate
	// Bearer is set when the certificate was proven by a JWT signed with
	// its key (Incus's JWT from a client certificate), not by TLS.
	Bearer bool

	// IdentityID is the recorded identity (OIDC user or TLS identity); ""
	// for certificate trust, and for an OIDC user not recorded yet.
	IdentityID string
	// Access is an identity's effective access (events.AccessAdmin,
	// AccessRestricted or AccessNone) and AccessSource where it comes from
	// (AccessFromGrant, AccessFromDefault); both "" for certificate trust.
	Access       string
	AccessSource string
	// Issuer, Subject, UsernameClaim and Groups describe an OIDC user: the
	// token's iss and sub, the claim the name was taken from, and the
	// groups claim.
	Issuer        string
	Subject       string
	UsernameClaim string
	Groups        []string
	// Challenge is set on an untrusted identity whose request carried an
	// Authorization header that did not authenticate while OIDC is
	// configured: the answer is 401 with the OIDC headers, not the
	// untrusted view. ChallengeExpired says the token was good but expired.
	Challenge        bool
	ChallengeExpired bool
}

// Admin reports whether the identity has full access.
func (id Identity) Admin() bool {
	return id.Trusted && !id.Restricted && id.Type != events.CertificateTypeMetrics && id.Access != events.AccessNone
}

// Ungranted reports whether a trusted identity holds no access at all.
func (id Identity) Ungranted() bool { return id.Trusted && id.Access == events.AccessNone }

// Actor returns the identity as the actor of an event.
func (id Identity) Actor() events.Actor {
	if !id.Trusted {
		return events.Actor{Name: id.Fingerprint, Method: "untrusted", Address: id.Address}
	}
	return events.Actor{Name: id.Name, Method: id.Method, Address: id.Address}
}

type ctxKey int

const (
	localUserKey ctxKey = iota
	identityKey
	peerKey
)

// WithLocalUser marks a request context as coming over the local unix
// socket from user. Hosts set it on connections of their unix listener.
func WithLocalUser(ctx context.Context, user string) context.Context {
	return context.WithValue(hideConnMemo(ctx), localUserKey, user)
}

// WithPeerCertificates attaches a client certificate chain (leaf first)
// that a trusted front end verified possession of, such as an AWS gateway.
// Hosts set it; it takes the place of the TLS connection's peer certificates.
func WithPeerCertificates(ctx context.Context, chain []*x509.Certificate) context.Context {
	return context.WithValue(hideConnMemo(ctx), peerKey, chain)
}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return WithIdentityOf(ctx, &id)
}

// WithIdentityOf returns ctx carrying *id, which must not change
// afterwards (an identity from Identify, say).
func WithIdentityOf(ctx context.Context, id *Identity) context.Context {
	return &identityCtx{Context: ctx, id: id}
}

// identityCtx carries an identity by reference in one small allocation:
// the gate does this on every request.
type identityCtx struct {
	context.Context
	id *Identity
}

func (c *identityCtx) Value(key any) any {
	if key == identityKey {
		return c
	}
	return c.Context.Value(key)
}

// FromContext returns the identity stored by WithIdentity, or an untrusted one.
func FromContext(ctx context.Context) Identity {
	if c, ok := ctx.Value(identityKey).(*identityCtx); ok {
		return *c.id
	}
	return Identity{}
}

// ReadModel is the view of the trust store authn needs.
type ReadModel interface {
	// Snapshot returns the current model; it must not block.
	Snapshot() *projections.Model
}

// OIDCClaims is what a verified OIDC access token says about its user.
type OIDCClaims struct {
	Issuer  string
	Subject string
	// Username is taken from oidc.claim, else email, else sub;
	// UsernameClaim names the claim used.
	Username      string
	UsernameClaim string
	Groups        []string
	Expiry        time.Time
	// IdentityID is projections.OIDCIdentityID(Issuer, Subject).
	IdentityID string
}

// OIDC verifies OpenID Connect access tokens (package oidc implements it).
type OIDC interface {
	// Enabled reports whether m configures OIDC.
	Enabled(m *projections.Model) bool
	// Cached returns the claims of a token verified earlier under the
	// configuration of m, by the SHA-256 of its text; no I/O.
	Cached(m *projections.Model, sum [32]byte) (OIDCClaims, bool)
	// Verify checks an access token under the configuration of m.
	Verify(ctx context.Context, m *projections.Model, token string) (OIDCClaims, error)
}

// ErrTokenExpired is returned by OIDC.Verify for a token whose signature
// and claims are good but whose exp has passed: the client should refresh.
var ErrTokenExpired = errors.New("authn: access token expired")

// KeyOIDCDefaultAccess is the configuration key giving OIDC users without
// a grant their access: "none" (the default, as LXD) or "admin" (as Incus).
const KeyOIDCDefaultAccess = "oidc.default_access"

// Authenticator authenticates requests against a read model. It is safe for
// concurrent use.
type Authenticator struct {
	model ReadModel
	now   func() time.Time
	// systemClock is set when now is time.Now, so that a caller that has
	// just read that clock can hand its reading over (IdentifyAt).
	systemClock bool
	sigs        atomic.Pointer[sigCache]
	jwts        jwtCache
	oidc        OIDC
}

// WithOIDC makes a accept OIDC access tokens verified by v, and returns a.
// Call it before serving.
func (a *Authenticator) WithOIDC(v OIDC) *Authenticator {
	a.oidc = v
	return a
}

// New returns an Authenticator. now is the clock (time.Now if nil).
func New(model ReadModel, now func() time.Time) *Authenticator {
	if now == nil {
		return &Authenticator{model: model, now: time.Now, systemClock: true}
	}
	return &Authenticator{model: model, now: now}
}

// PeerCertificates returns the client certificate chain of r: from a
// front end (WithPeerCertificates) or the TLS connection.
func PeerCertificates(r *http.Request) []*x509.Certificate {
	if r.TLS != nil && connMemoOf(r.Context()) != nil {
		return r.TLS.PeerCertificates // no front end's chain where a memo is (connMemoOf)
	}
	if chain, ok := r.Context().Value(peerKey).([]*x509.Certificate); ok {
		return chain
	}
	if r.TLS != nil {
		return r.TLS.PeerCertificates
	}
	return nil
}

// Authenticate returns the identity of r. It never fails: an unknown caller
// is an untrusted Identity.
//
// Only the leaf certificate is matched against the trust store. The TLS
// handshake proves possession of the leaf's key alone, so a trusted
// certificate sent as an intermediate proves nothing.
func (a *Authenticator) Authenticate(r *http.Request) Identity { return a.authenticateAt(r, a.now()) }

// Identify is Authenticate returning the identity by reference, which may
// be shared: it must not be modified. On a keep-alive connection whose
// peer certificate is trusted, the requests made under one read model get
// the same Identity, worked out by the first (outside PKI mode, where the
// answer also depends on the CRL's age). The gate hands it on without
// copying it for every request.
func (a *Authenticator) Identify(r *http.Request) *Identity { return a.identify(r, a.now()) }

// IdentifyAt is Identify with the clock read by the caller: now must come
// from time.Now, and is used only if a's clock is time.Now too (each
// reading costs ≈ 50 ns on a VM's paravirtual clock).
func (a *Authenticator) IdentifyAt(r *http.Request, now time.Time) *Identity {
	if !a.systemClock {
		now = a.now()
	}
	return a.identify(r, now)
}

func (a *Authenticator) identify(r *http.Request, now time.Time) *Identity {
	// A memo means a TLS connection with no local user and no front end's
	// certificates in the context (connMemoOf): its peer is r.TLS's.
	memo := connMemoOf(r.Context())
	if memo != nil && r.TLS != nil {
		if chain := r.TLS.PeerCertificates; len(chain) > 0 {
			if c := memo.ident.Load(); c != nil && c.holds(a.model.Snapshot(), now, chain[0], r.RemoteAddr) {
				return &c.id
			}
		}
	}
	id := a.authenticateAt(r, now)
	if id.Trusted && memo != nil {
		memo.authenticated()
	}
	return &id
}

// holds reports whether the remembered identity still answers for leaf,
// seen from remote, under m at now.
func (c *memoIdentity) holds(m *projections.Model, now time.Time, leaf *x509.Certificate, remote string) bool {
	return c.model == m && c.leaf == leaf && c.remote == remote && !now.Before(leaf.NotBefore) && !now.After(leaf.NotAfter)
}

func (a *Authenticator) authenticateAt(r *http.Request, now time.Time) Identity {
	id := Identity{Address: remoteHost(r.RemoteAddr)}
	if user, ok := r.Context().Value(localUserKey).(string); ok {
		id.Trusted, id.Method, id.Name = true, MethodUnix, user
		if id.Address == "@" {
			id.Address = "" // a unix socket peer has no network address
		}
		return id
	}
	m := a.model.Snapshot()
	if chain := PeerCertificates(r); len(chain) > 0 {
		leaf := chain[0]
		sum, fp := fingerprintOf(r.Context(), leaf)
		id.PeerCertificate = leaf
		id.Fingerprint = fp
		if t := a.trustCert(m, id, leaf, sum, now); t.Trusted {
			if memo := connMemoOf(r.Context()); memo != nil && m.CA() == nil {
				memo.ident.Store(&memoIdentity{model: m, leaf: leaf, remote: r.RemoteAddr, id: t})
			}
			return t
		}
	}
	oidcOn := a.oidc != nil && a.oidc.Enabled(m)
	if tok, ok := bearerToken(r); ok {
		sum := sha256.Sum256([]byte(tok))
		// A verified OIDC token is found by its hash before anything is
		// parsed; a certificate JWT is tried next (its own cache first),
		// then the full OIDC verification.
		if oidcOn {
			if c, ok := a.oidc.Cached(m, sum); ok {
				return oidcIdentity(m, Identity{Address: id.Address}, c)
			}
		}
		if t, ok := a.bearer(m, Identity{Address: id.Address}, tok, sum, now); ok {
			return t
		}
		if oidcOn {
			c, err := a.oidc.Verify(r.Context(), m, tok)
			if err == nil {
				return oidcIdentity(m, Identity{Address: id.Address}, c)
			}
			id.ChallengeExpired = errors.Is(err, ErrTokenExpired)
		}
	}
	if oidcOn && r.Header.Get("Authorization") != "" {
		id.Challenge = true
	}
	return id
}

// oidcIdentity is the identity of a verified OIDC user, with the access of
// its recorded identity (or the default, if it is not recorded yet).
func oidcIdentity(m *projections.Model, id Identity, c OIDCClaims) Identity {
	id.Trusted, id.Method, id.Name = true, MethodOIDC, c.Username
	id.Issuer, id.Subject, id.UsernameClaim, id.Groups = c.Issuer, c.Subject, c.UsernameClaim, c.Groups
	iid := c.IdentityID
	if iid == "" {
		iid = projections.OIDCIdentityID(c.Issuer, c.Subject)
	}
	ident, ok := m.Identity(iid)
	if ok {
		id.IdentityID = ident.ID
	}
	return withGrant(m, id, ident)
}

// WithGrant returns id with the access of the recorded identity ident (nil
// for none): its grant, else the default for its method.
func WithGrant(m *projections.Model, id Identity, ident *projections.Identity) Identity {
	return withGrant(m, id, ident)
}

func withGrant(m *projections.Model, id Identity, ident *projections.Identity) Identity {
	access, source, projects := "", AccessFromGrant, []string(nil)
	if ident != nil && ident.Access != "" {
		access, projects = ident.Access, ident.Projects
	} else {
		source = AccessFromDefault
		if id.Method == MethodOIDC {
			access = m.ConfigValue(KeyOIDCDefaultAccess)
		}
	}
	switch access {
	case events.AccessAdmin:
	case events.AccessRestricted:
		id.Restricted, id.Projects = true, projects
	default:
		access = events.AccessNone
	}
	id.Access, id.AccessSource = access, source
	return id
}

// trustCert decides whether leaf, whose fingerprint is sum, is trusted at
// now: in date, in the trust store (or CA-trusted), and in PKI mode signed
// by the CA and not revoked. It returns id, trusted or not.
func (a *Authenticator) trustCert(m *projections.Model, id Identity, leaf *x509.Certificate, sum [32]byte, now time.Time) Identity {
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return id
	}
	entry, ok := m.Certificate(sum)
	if ok && entry.Type == events.CertificateTypeServer {
		// Server certificates (cluster members) are exempt from PKI checks.
		return trust(id, entry, MethodCluster)
	}
	var ident *projections.Identity
	if !ok {
		ident, _ = m.IdentityByCertificate(sum)
	}
	if ca := m.CA(); ca != nil {
		if !a.CASigned(ca, leaf, sum) || m.Revoked(leaf.SerialNumber) {
			return id
		}
		if m.CRL().Stale(now) && configBool(m, KeyCRLFailClosed) {
			return id
		}
		switch {
		case ok:
			return trust(id, entry, MethodTLS)
		case ident != nil:
			return trustIdentity(m, id, ident)
		case configBool(m, KeyTrustCA):
			id.Trusted, id.Method, id.Name = true, MethodPKI, id.Fingerprint
			return id
		}
		return id
	}
	switch {
	case ok:
		return trust(id, entry, MethodTLS)
	case ident != nil:
		return trustIdentity(m, id, ident)
	}
	return id
}

// trustIdentity is the identity of a TLS identity's certificate: trusted,
// with the identity's grant.
func trustIdentity(m *projections.Model, id Identity, ident *projections.Identity) Identity {
	id.Trusted, id.Method, id.Name = true, MethodTLS, id.Fingerprint
	id.CertificateName, id.Type, id.IdentityID = ident.Name, events.CertificateTypeClient, ident.ID
	return withGrant(m, id, ident)
}

// bearer authenticates a JWT signed by the key of a trusted client
// certificate (Incus's JWT from a client certificate): the request is then
// treated exactly as mTLS with that certificate. The signature is checked
// once per token; the trust checks run on every request.
func (a *Authenticator) bearer(m *projections.Model, id Identity, tok string, key [32]byte, now time.Time) (Identity, bool) {
	sub, ok := a.jwts.get(key, now)
	if !ok {
		s, alg, exp, signed, sig, err := parseClientJWT(tok, now)
		if err != nil {
			return id, false
		}
		entry, found := m.CertificateByFingerprint(s)
		if !found || entry.Type != events.CertificateTypeClient || entry.X509() == nil {
			return id, false
		}
		if verifyJWS(entry.X509(), alg, signed, sig) != nil {
			return id, false
		}
		a.jwts.put(key, jwtEntry{sub: s, exp: exp})
		sub = s
	}
	entry, found := m.CertificateByFingerprint(sub)
	if !found || entry.Type != events.CertificateTypeClient || entry.X509() == nil {
		return id, false
	}
	cert := entry.X509()
	id.PeerCertificate, id.Fingerprint, id.Bearer = cert, entry.Fingerprint, true
	t := a.trustCert(m, id, cert, projections.Fingerprint(cert.Raw), now)
	return t, t.Trusted
}

// configBool reads a boolean configuration key; unset or invalid is false.
func configBool(m *projections.Model, key string) bool {
	b, _ := strconv.ParseBool(m.ConfigValue(key))
	return b
}

func trust(id Identity, entry *projections.Certificate, method string) Identity {
	id.Trusted = true
	id.Method = method
	id.Name = id.Fingerprint
	id.CertificateName = entry.Name
	id.Type = entry.Type
	id.Restricted = entry.Restricted
	id.Projects = entry.Projects
	return id
}

// KeyTrustCA is the configuration key that trusts every CA-signed, in-date,
// unrevoked client certificate in PKI mode, without a trust-store entry.
const KeyTrustCA = "core.trust_ca_certificates"

// KeyCRLFailClosed is the configuration key that refuses every CA-signed
// client while the CRL in force is past its nextUpdate. By default a stale
// list is still enforced and a warning is raised.
const KeyCRLFailClosed = "core.crl_fail_closed"

// sigCacheSize bounds the per-CA cache of signature checks.
const sigCacheSize = 100_000

// sigCache remembers, for one CA, which certificates it signed. Checking an
// ECDSA P-384 signature costs about 0.4 ms, so it is done once per
// certificate, not per request.
type sigCache struct {
	ca   string
	mu   sync.Mutex
	seen map[[32]byte]bool
}

// CASigned reports whether leaf (whose fingerprint is sum) was issued
// directly by ca, remembering the answer per CA.
func (a *Authenticator) CASigned(ca *projections.CA, leaf *x509.Certificate, sum [32]byte) bool {
	if ca.Cert == nil {
		return false
	}
	c := a.sigs.Load()
	if c == nil || c.ca != ca.Fingerprint {
		c = &sigCache{ca: ca.Fingerprint, seen: map[[32]byte]bool{}}
		a.sigs.Store(c)
	}
	c.mu.Lock()
	ok, known := c.seen[sum]
	c.mu.Unlock()
	if known {
		return ok
	}
	ok = leaf.CheckSignatureFrom(ca.Cert) == nil
	c.mu.Lock()
	if len(c.seen) >= sigCacheSize {
		clear(c.seen)
	}
	c.seen[sum] = ok
	c.mu.Unlock()
	return ok
}

func remoteHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
