package authn_test

// PKI mode in authn: CA signature, revocation, core.trust_ca_certificates,
// stale lists and core.crl_fail_closed, the server-entry exemption, JWTs
// of revoked certificates, and the per-CA signature cache. The models are
// pure folds of events; the names carry a "pki" prefix because other test
// files of this package are written at the same time.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/projections"
)

var pkiNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// pkiModel serves a model that a test may swap.
type pkiModel struct {
	p atomic.Pointer[projections.Model]
}

func (m *pkiModel) Snapshot() *projections.Model { return m.p.Load() }

func newPKIModel(m *projections.Model) *pkiModel {
	pm := &pkiModel{}
	pm.p.Store(m)
	return pm
}

// pkiFold builds a model from payloads, as the projector would.
func pkiFold(tb testing.TB, payloads ...events.Payload) *projections.Model {
	tb.Helper()
	b := projections.NewBuilder(nil)
	for i, p := range payloads {
		env, err := events.New(fmt.Sprintf("ev-%d", i+1), "/test", pkiNow, events.Actor{Name: "test", Method: "unix"}, p)
		if err != nil {
			tb.Fatal(err)
		}
		env.PrevHash = b.Hash()
		raw, err := env.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		if err := b.Apply(events.Record{Seq: uint64(i + 1), Raw: raw}); err != nil {
			tb.Fatal(err)
		}
	}
	return b.Model()
}

// pkiIssuer is a CA (or, with IsCA false in its certificate, a plain key
// pair used for self-signed leaves).
type pkiIssuer struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func pkiNewKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

var pkiSerials atomic.Int64

// pkiSign signs tmpl with parent (self-signed if parent is nil) and returns
// the certificate and its key.
func pkiSign(tb testing.TB, tmpl *x509.Certificate, parent *pkiIssuer) *pkiIssuer {
	tb.Helper()
	k := pkiNewKey(tb)
	tmpl.SerialNumber = big.NewInt(1000 + pkiSerials.Add(1))
	signer, signerCert := k, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &k.PublicKey, signer)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &pkiIssuer{key: k, cert: c}
}

func pkiNewCA(tb testing.TB, cn string, parent *pkiIssuer) *pkiIssuer {
	tb.Helper()
	return pkiSign(tb, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: pkiNow.Add(-time.Hour), NotAfter: pkiNow.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, parent)
}

// pkiLeaf makes a client certificate valid in [nb, na] signed by parent
// (self-signed if nil).
func pkiLeaf(tb testing.TB, cn string, parent *pkiIssuer, nb, na time.Time) *pkiIssuer {
	tb.Helper()
	return pkiSign(tb, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, parent)
}

func pkiClient(tb testing.TB, cn string, parent *pkiIssuer) *pkiIssuer {
	tb.Helper()
	return pkiLeaf(tb, cn, parent, pkiNow.Add(-time.Hour), pkiNow.Add(12*time.Hour))
}

func (c *pkiIssuer) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}))
}

func (c *pkiIssuer) fp() string {
	sum := projections.Fingerprint(c.cert.Raw)
	return hex.EncodeToString(sum[:])
}

// caEvent is the CAChanged that puts c in force.
func (c *pkiIssuer) caEvent(tb testing.TB) events.CAChanged {
	tb.Helper()
	ev, err := pki.CAEvent(c.pem())
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

// crlEvents are the events of a CRL of c with number revoking certs, as
// published on a model where c is the CA.
func (c *pkiIssuer) crlEvents(tb testing.TB, number int64, this, next time.Time, certs ...*pkiIssuer) []events.Payload {
	tb.Helper()
	entries := make([]x509.RevocationListEntry, len(certs))
	for i, r := range certs {
		entries[i] = x509.RevocationListEntry{SerialNumber: r.cert.SerialNumber, RevocationTime: this}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next, RevokedCertificateEntries: entries,
	}, c.cert, c.key)
	if err != nil {
		tb.Fatal(err)
	}
	evs, err := pki.CRLEvents(pkiFold(tb, c.caEvent(tb)), der)
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

func (c *pkiIssuer) trusted(typ string, restricted bool) events.CertificateTrusted {
	projects := []string{}
	if restricted {
		projects = []string{"p1"}
	}
	return events.CertificateTrusted{
		Fingerprint: c.fp(), Name: c.cert.Subject.CommonName, Type: typ, Restricted: restricted,
		Projects: projects, Certificate: c.pem(),
	}
}

// pkiAuth authenticates a request over TLS presenting chain (leaf
// first), with a bearer token if one is given.
func pkiAuth(a *authn.Authenticator, bearer string, chain ...*pkiIssuer) authn.Identity {
	r := httptest.NewRequest("GET", "/1.0", nil)
	if len(chain) > 0 {
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
		for _, c := range chain {
			r.TLS.PeerCertificates = append(r.TLS.PeerCertificates, c.cert)
		}
	}
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	return a.Authenticate(r)
}

// pkiJWT is an ES384 JWT for c's fingerprint signed with c's key, as Incus
// clients make from their certificate.
func pkiJWT(tb testing.TB, c *pkiIssuer, exp time.Time) string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	header, _ := json.Marshal(map[string]string{"alg": "ES384", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{"sub": c.fp(), "exp": exp.Unix()})
	signed := enc(header) + "." + enc(claims)
	digest := sha512.Sum384([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, c.key, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 96)
	r.FillBytes(sig[:48])
	s.FillBytes(sig[48:])
	return signed + "." + enc(sig)
}

// TestAuthenticatePKI is the table of who PKI mode trusts.
func TestAuthenticatePKI(t *testing.T) {
	t.Parallel()
	ca := pkiNewCA(t, "ca", nil)
	impostor := pkiNewCA(t, "ca", nil) // same name, other key
	inter := pkiNewCA(t, "intermediate", ca)

	entry := pkiClient(t, "entry", ca)
	restricted := pkiClient(t, "restricted", ca)
	metricsCert := pkiClient(t, "metrics", ca)
	legacy := pkiClient(t, "legacy", nil)
	member := pkiClient(t, "member", nil)
	revoked := pkiClient(t, "revoked", ca)
	expired := pkiLeaf(t, "expired", ca, pkiNow.Add(-2*time.Hour), pkiNow.Add(-time.Minute))
	future := pkiLeaf(t, "future", ca, pkiNow.Add(time.Minute), pkiNow.Add(time.Hour))
	loner := pkiClient(t, "loner", ca)
	foreign := pkiClient(t, "foreign", impostor)
	chained := pkiClient(t, "chained", inter)
	lateRevoked := pkiClient(t, "late-revoked", ca)

	store := []events.Payload{
		entry.trusted("client", false), restricted.trusted("client", true), metricsCert.trusted("metrics", false),
		legacy.trusted("client", false), member.trusted("server", false), revoked.trusted("client", false),
		expired.trusted("client", false), foreign.trusted("client", false), chained.trusted("client", false),
		lateRevoked.trusted("client", false),
	}
	crl := ca.crlEvents(t, 1, pkiNow.Add(-time.Hour), pkiNow.Add(time.Hour), revoked)
	// A second list revoking lateRevoked too, folded without its last part:
	// it must not be in force. It needs more than one part.
	many := make([]*pkiIssuer, 0, pki.PartSize+1)
	many = append(many, revoked, lateRevoked)
	for range pki.PartSize - 1 {
		many = append(many, &pkiIssuer{cert: &x509.Certificate{SerialNumber: big.NewInt(1<<40 + pkiSerials.Add(1))}})
	}
	big2 := ca.crlEvents(t, 2, pkiNow.Add(-time.Hour), pkiNow.Add(time.Hour), many...)
	if len(big2) != 2 {
		t.Fatalf("the second list has %d parts, want 2", len(big2))
	}

	base := append(append([]events.Payload{}, store...), ca.caEvent(t))
	base = append(base, crl...)
	cfg := func(kv ...string) []events.Payload {
		var out []events.Payload
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, events.ConfigChanged{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	models := map[string]*projections.Model{
		"off":         pkiFold(t, append(append([]events.Payload{}, store...), cfg(authn.KeyTrustCA, "true")...)...),
		"pki":         pkiFold(t, base...),
		"trust-ca":    pkiFold(t, append(append([]events.Payload{}, base...), cfg(authn.KeyTrustCA, "true")...)...),
		"fail-closed": pkiFold(t, append(append([]events.Payload{}, base...), cfg(authn.KeyTrustCA, "true", authn.KeyCRLFailClosed, "true")...)...),
		"partial":     pkiFold(t, append(append([]events.Payload{}, base...), big2[0])...),
		"complete":    pkiFold(t, append(append([]events.Payload{}, base...), big2...)...),
		"no-crl":      pkiFold(t, append(append([]events.Payload{}, store...), ca.caEvent(t))...),
	}
	stale := pkiNow.Add(2 * time.Hour) // past the first list's nextUpdate

	tests := []struct {
		name       string
		model      string
		now        time.Time
		chain      []*pkiIssuer
		jwt        *pkiIssuer // if set, a bearer token of this certificate, and no TLS chain
		method     string     // "" for untrusted
		typ        string
		restricted bool
	}{
		{"ok/PKI off, self-signed entry", "off", pkiNow, []*pkiIssuer{legacy}, nil, "tls", "client", false},
		{"fail/PKI off, trust_ca ignored", "off", pkiNow, []*pkiIssuer{loner}, nil, "", "", false},
		{"ok/CA-signed entry", "pki", pkiNow, []*pkiIssuer{entry}, nil, "tls", "client", false},
		{"ok/CA-signed entry, no CRL", "no-crl", pkiNow, []*pkiIssuer{entry}, nil, "tls", "client", false},
		{"fail/self-signed entry", "pki", pkiNow, []*pkiIssuer{legacy}, nil, "", "", false},
		{"ok/server entry exempt", "pki", pkiNow, []*pkiIssuer{member}, nil, "cluster", "server", false},
		{"fail/revoked entry", "pki", pkiNow, []*pkiIssuer{revoked}, nil, "", "", false},
		{"fail/revoked entry, trust_ca", "trust-ca", pkiNow, []*pkiIssuer{revoked}, nil, "", "", false},
		{"fail/CA-signed, no entry", "pki", pkiNow, []*pkiIssuer{loner}, nil, "", "", false},
		{"ok/CA-signed, no entry, trust_ca", "trust-ca", pkiNow, []*pkiIssuer{loner}, nil, "pki", "", false},
		{"ok/restricted stays restricted, trust_ca", "trust-ca", pkiNow, []*pkiIssuer{restricted}, nil, "tls", "client", true},
		{"ok/metrics entry", "trust-ca", pkiNow, []*pkiIssuer{metricsCert}, nil, "tls", "metrics", false},
		{"fail/expired entry, trust_ca", "trust-ca", pkiNow, []*pkiIssuer{expired}, nil, "", "", false},
		{"fail/not yet valid, trust_ca", "trust-ca", pkiNow, []*pkiIssuer{future}, nil, "", "", false},
		{"fail/same-named other CA, trust_ca", "trust-ca", pkiNow, []*pkiIssuer{foreign}, nil, "", "", false},
		{"fail/signed by an intermediate, trust_ca", "trust-ca", pkiNow, []*pkiIssuer{chained, inter}, nil, "", "", false},
		{"fail/CA-signed certificate not the leaf", "trust-ca", pkiNow, []*pkiIssuer{legacy, entry}, nil, "", "", false},
		{"ok/stale list still enforced, good client", "trust-ca", stale, []*pkiIssuer{entry}, nil, "tls", "client", false},
		{"fail/stale list still enforced, revoked", "trust-ca", stale, []*pkiIssuer{revoked}, nil, "", "", false},
		{"ok/fail closed, fresh list", "fail-closed", pkiNow, []*pkiIssuer{entry}, nil, "tls", "client", false},
		{"fail/fail closed, stale list, entry", "fail-closed", stale, []*pkiIssuer{entry}, nil, "", "", false},
		{"fail/fail closed, stale list, pki", "fail-closed", stale, []*pkiIssuer{loner}, nil, "", "", false},
		{"ok/fail closed, stale list, server entry", "fail-closed", stale, []*pkiIssuer{member}, nil, "cluster", "server", false},
		{"ok/list missing a part is not in force", "partial", pkiNow, []*pkiIssuer{lateRevoked}, nil, "tls", "client", false},
		{"fail/old list stays in force while parts are missing", "partial", pkiNow, []*pkiIssuer{revoked}, nil, "", "", false},
		{"fail/complete list in force", "complete", pkiNow, []*pkiIssuer{lateRevoked}, nil, "", "", false},
		{"ok/JWT of a CA-signed entry", "pki", pkiNow, nil, entry, "tls", "client", false},
		{"fail/JWT of a revoked entry", "pki", pkiNow, nil, revoked, "", "", false},
		{"fail/JWT of a self-signed entry", "pki", pkiNow, nil, legacy, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := tt.now
			a := authn.New(newPKIModel(models[tt.model]), func() time.Time { return now })
			var id authn.Identity
			if tt.jwt != nil {
				id = pkiAuth(a, pkiJWT(t, tt.jwt, now.Add(time.Minute)))
			} else {
				id = pkiAuth(a, "", tt.chain...)
			}
			if id.Trusted != (tt.method != "") || id.Method != tt.method || id.Type != tt.typ || id.Restricted != tt.restricted {
				t.Fatalf("identity: trusted %v method %q type %q restricted %v; want method %q type %q restricted %v",
					id.Trusted, id.Method, id.Type, id.Restricted, tt.method, tt.typ, tt.restricted)
			}
			want := tt.jwt
			if want == nil {
				want = tt.chain[0]
			}
			// A refused bearer token names no certificate.
			if (tt.jwt == nil || id.Trusted) && id.Fingerprint != want.fp() {
				t.Errorf("fingerprint %s, want %s", id.Fingerprint, want.fp())
			}
			if id.Trusted && id.Name != want.fp() {
				t.Errorf("auth_user_name %q, want the fingerprint", id.Name)
			}
			if tt.method == "pki" && (!id.Admin() || id.CertificateName != "") {
				t.Errorf("pki identity: admin %v, entry name %q", id.Admin(), id.CertificateName)
			}
		})
	}
}

// TestCASignedCache: the signature check is remembered per CA, so a
// change of CA, or a revocation, takes effect on the next request of the
// same Authenticator; concurrent use is safe.
func TestCASignedCache(t *testing.T) {
	t.Parallel()
	a1, b1 := pkiNewCA(t, "a", nil), pkiNewCA(t, "b", nil)
	ofA, ofB := pkiClient(t, "of-a", a1), pkiClient(t, "of-b", b1)
	store := []events.Payload{ofA.trusted("client", false), ofB.trusted("client", false)}
	withA := pkiFold(t, append(append([]events.Payload{}, store...), a1.caEvent(t))...)
	withB := pkiFold(t, append(append([]events.Payload{}, store...), b1.caEvent(t))...)
	revokedA := pkiFold(t, append(append(append([]events.Payload{}, store...), a1.caEvent(t)), a1.crlEvents(t, 1, pkiNow, pkiNow.Add(time.Hour), ofA)...)...)
	model := newPKIModel(withA)
	a := authn.New(model, func() time.Time { return pkiNow })

	steps := []struct {
		name       string
		model      *projections.Model
		wantA      bool
		wantB      bool
		cachedA    bool // CASigned(current CA, ofA)
		checkCache bool
	}{
		{"ok/CA a", withA, true, false, true, true},
		{"ok/CA b replaces a", withB, false, true, false, false},
		{"ok/back to a", withA, true, false, true, true},
		{"fail/a revokes of-a", revokedA, false, false, true, true},
		{"ok/a without the list", withA, true, false, true, true},
	}
	for _, st := range steps {
		model.p.Store(st.model)
		for range 2 { // the second time from the cache
			if got := pkiAuth(a, "", ofA).Trusted; got != st.wantA {
				t.Errorf("%s: of-a trusted %v, want %v", st.name, got, st.wantA)
			}
			if got := pkiAuth(a, "", ofB).Trusted; got != st.wantB {
				t.Errorf("%s: of-b trusted %v, want %v", st.name, got, st.wantB)
			}
		}
		if st.checkCache {
			if got := a.CASigned(st.model.CA(), ofA.cert, projections.Fingerprint(ofA.cert.Raw)); got != st.cachedA {
				t.Errorf("%s: CASigned(of-a) = %v", st.name, got)
			}
		}
	}
	if a.CASigned(&projections.CA{Fingerprint: "no-cert"}, ofA.cert, projections.Fingerprint(ofA.cert.Raw)) {
		t.Error("CASigned with a CA that did not parse")
	}

	t.Run("ok/concurrent", func(t *testing.T) {
		stranger := pkiClient(t, "stranger", nil)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 {
					model.p.Store(withB)
				} else {
					model.p.Store(withA)
				}
			}
		})
		var bad atomic.Int64
		var workers sync.WaitGroup
		for range 8 {
			workers.Go(func() {
				for range 300 {
					if pkiAuth(a, "", stranger).Trusted {
						bad.Add(1)
					}
					pkiAuth(a, "", ofA)
					pkiAuth(a, "", ofB)
				}
			})
		}
		workers.Wait()
		close(stop)
		wg.Wait()
		if bad.Load() != 0 {
			t.Errorf("a certificate of no CA was trusted %d times", bad.Load())
		}
	})
}

// TestIdentifyKeepAlive: on one connection (one memo), the identity worked
// out for a trusted certificate is reused only while the read model, the
// remote address and the certificate's validity all stay; in PKI mode,
// where the CRL's age also counts, it is worked out every time.
func TestIdentifyKeepAlive(t *testing.T) {
	t.Parallel()
	kept := pkiLeaf(t, "kept", nil, pkiNow.Add(-time.Hour), pkiNow.Add(time.Hour))
	trusted := pkiFold(t, kept.trusted("client", false))
	removed := pkiFold(t, kept.trusted("client", false), events.CertificateRemoved{Fingerprint: kept.fp()})
	model := newPKIModel(trusted)
	now := pkiNow
	a := authn.New(model, func() time.Time { return now })
	conn := authn.WithConnMemo(context.Background())
	request := func(remote string, leaf *pkiIssuer) *http.Request { return tlsRequest(conn, remote, leaf.cert) }
	first := a.Identify(request("192.0.2.1:1000", kept))
	if !first.Trusted || first.Address != "192.0.2.1" {
		t.Fatalf("first request: %+v", first)
	}
	// The first request worked the identity out and remembered it; the
	// next ones get the one remembered.
	second := a.Identify(request("192.0.2.1:1000", kept))
	if third := a.Identify(request("192.0.2.1:1000", kept)); third != second || !cmp.Equal(*second, *first) {
		t.Errorf("later requests on the connection do not share one identity equal to the first's")
	}
	model.p.Store(removed)
	if got := a.Identify(request("192.0.2.1:1000", kept)); got.Trusted {
		t.Fatalf("still trusted once the model no longer holds the certificate: %+v", got)
	}
	model.p.Store(trusted)
	if got := a.Identify(request("192.0.2.1:1000", kept)); !got.Trusted {
		t.Fatalf("not trusted again under a model holding it: %+v", got)
	}
	if other := a.Identify(request("192.0.2.9:2000", kept)); !other.Trusted || other.Address != "192.0.2.9" {
		t.Errorf("another remote address got the first one's identity: %+v", other)
	}
	now = pkiNow.Add(2 * time.Hour) // past NotAfter, same model and connection as the last request
	if got := a.Identify(request("192.0.2.9:2000", kept)); got.Trusted {
		t.Fatalf("trusted after the certificate expired: %+v", got)
	}

	// PKI mode: the same connection is refused once the list goes stale
	// under core.crl_fail_closed, with no new event.
	ca := pkiNewCA(t, "ca", nil)
	entry := pkiClient(t, "entry", ca)
	var pkiEvents []events.Payload
	pkiEvents = append(pkiEvents, entry.trusted("client", false), ca.caEvent(t))
	pkiEvents = append(pkiEvents, ca.crlEvents(t, 1, pkiNow.Add(-time.Hour), pkiNow.Add(time.Hour))...)
	pkiEvents = append(pkiEvents, events.ConfigChanged{Key: authn.KeyCRLFailClosed, Value: "true"})
	model.p.Store(pkiFold(t, pkiEvents...))
	now = pkiNow
	if got := a.Identify(request("192.0.2.1:1000", entry)); !got.Trusted {
		t.Fatalf("CA-signed entry refused with a fresh list: %+v", got)
	}
	now = pkiNow.Add(2 * time.Hour) // past the list's nextUpdate
	if got := a.Identify(request("192.0.2.1:1000", entry)); got.Trusted {
		t.Fatalf("trusted on the same connection after the list went stale (fail closed): %+v", got)
	}
}
