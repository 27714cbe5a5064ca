package authn_test

// Authentication of TLS clients against a real read model: a natsstore.Store
// on an embedded JetStream, a running projector and a committer write the
// trust store; a real TLS 1.3 server hands each request to Authenticate.
// Helper names carry an "an" prefix so as not to collide with jwt_test.go.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/projections"
)

// anTimeout bounds every wait on the stream and every request.
const anTimeout = 20 * time.Second

// anClock is a settable clock.
type anClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *anClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *anClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// anStack is a trust store on JetStream with an Authenticator over it,
// served behind a real TLS listener that replies with the identity.
type anStack struct {
	t     *testing.T
	proj  *projections.Projector
	c     *commit.Committer
	clock *anClock
	auth  *authn.Authenticator
	srv   *httptest.Server
}

func newANStack(t *testing.T) *anStack {
	t.Helper()
	st, _ := natstest.OpenStore(t)
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	clock := &anClock{now: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	s := &anStack{
		t: t, proj: p, clock: clock,
		c:    &commit.Committer{Model: p, Log: st, Now: clock.Now, NewID: uuid.NewString, Source: "/trustlog/authn-test"},
		auth: authn.New(p, clock.Now),
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := s.auth.Authenticate(r)
		out := anReply{Admin: id.Admin()}
		if id.PeerCertificate != nil {
			sum := sha256.Sum256(id.PeerCertificate.Raw)
			out.PeerFP = hex.EncodeToString(sum[:])
		}
		id.PeerCertificate = nil
		out.ID = id
		_ = json.NewEncoder(w).Encode(out)
	}))
	s.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequestClientCert}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// anReply is what the test server answers: the identity (without the
// parsed certificate), Admin() and the fingerprint of PeerCertificate.
type anReply struct {
	ID     authn.Identity
	Admin  bool
	PeerFP string
}

// trust appends a CertificateTrusted event for c and waits for it.
func (s *anStack) trust(c *anCert, typ string, restricted bool, projects ...string) {
	s.t.Helper()
	if projects == nil {
		projects = []string{}
	}
	s.do(events.CertificateTrusted{Fingerprint: c.FP, Name: "entry-" + c.X509.Subject.CommonName, Type: typ,
		Restricted: restricted, Projects: projects, Certificate: c.PEM()})
}

func (s *anStack) do(p events.Payload) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), anTimeout)
	defer cancel()
	if _, err := s.c.Do(ctx, events.Actor{Name: "test", Method: "unix"}, func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{p}, nil
	}); err != nil {
		s.t.Fatal(err)
	}
}

// get sends GET / over TLS 1.3, presenting chain (none if empty).
func (s *anStack) get(chain ...*anCert) anReply {
	s.t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: x509.NewCertPool()}
	cfg.RootCAs.AddCert(s.srv.Certificate())
	if len(chain) > 0 {
		pair := tls.Certificate{PrivateKey: chain[0].Key, Leaf: chain[0].X509}
		for _, c := range chain {
			pair.Certificate = append(pair.Certificate, c.X509.Raw)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), anTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.srv.URL+"/", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out anReply
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// anCert is a self-signed client certificate and its key.
type anCert struct {
	X509 *x509.Certificate
	Key  crypto.Signer
	FP   string
}

func (c *anCert) PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.X509.Raw}))
}

// newANCert makes an ECDSA P-384 certificate valid in [nb, na].
func newANCert(t *testing.T, cn string, nb, na time.Time) *anCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &anCert{X509: x, Key: key, FP: hex.EncodeToString(sum[:])}
}

// TestAuthenticateTLS runs one TLS client per kind of trust-store entry and
// checks the identity Authenticate gives it.
func TestAuthenticateTLS(t *testing.T) {
	t.Parallel()
	s := newANStack(t)
	now := s.clock.Now()
	valid := func(cn string) *anCert { return newANCert(t, cn, now.Add(-time.Hour), now.Add(time.Hour)) }
	admin, restricted, metrics, server, unknown := valid("admin"), valid("restricted"), valid("metrics"), valid("server"), valid("unknown")
	s.trust(admin, events.CertificateTypeClient, false)
	s.trust(restricted, events.CertificateTypeClient, true, "p1", "p2")
	s.trust(metrics, events.CertificateTypeMetrics, false)
	s.trust(server, events.CertificateTypeServer, false)

	for _, tc := range []struct {
		name      string
		chain     []*anCert
		want      authn.Identity
		wantAdmin bool
	}{
		{name: "ok/no certificate", want: authn.Identity{Address: "127.0.0.1"}},
		{name: "ok/unknown certificate", chain: []*anCert{unknown},
			want: authn.Identity{Fingerprint: unknown.FP, Address: "127.0.0.1"}},
		{name: "ok/admin client", chain: []*anCert{admin}, wantAdmin: true, want: authn.Identity{
			Trusted: true, Method: "tls", Name: admin.FP, Fingerprint: admin.FP, CertificateName: "entry-admin",
			Type: "client", Projects: []string{}, Address: "127.0.0.1"}},
		{name: "ok/restricted client", chain: []*anCert{restricted}, want: authn.Identity{
			Trusted: true, Method: "tls", Name: restricted.FP, Fingerprint: restricted.FP, CertificateName: "entry-restricted",
			Type: "client", Restricted: true, Projects: []string{"p1", "p2"}, Address: "127.0.0.1"}},
		{name: "ok/metrics certificate is trusted but no admin", chain: []*anCert{metrics}, want: authn.Identity{
			Trusted: true, Method: "tls", Name: metrics.FP, Fingerprint: metrics.FP, CertificateName: "entry-metrics",
			Type: "metrics", Projects: []string{}, Address: "127.0.0.1"}},
		{name: "ok/server certificate is a cluster member", chain: []*anCert{server}, wantAdmin: true, want: authn.Identity{
			Trusted: true, Method: "cluster", Name: server.FP, Fingerprint: server.FP, CertificateName: "entry-server",
			Type: "server", Projects: []string{}, Address: "127.0.0.1"}},
		// The handshake proves possession of the leaf's key only: a trusted
		// certificate sent behind another leaf proves nothing.
		{name: "fail/trusted certificate as intermediate", chain: []*anCert{unknown, admin},
			want: authn.Identity{Fingerprint: unknown.FP, Address: "127.0.0.1"}},
		{name: "ok/trusted leaf with extra certificates", chain: []*anCert{admin, unknown}, wantAdmin: true, want: authn.Identity{
			Trusted: true, Method: "tls", Name: admin.FP, Fingerprint: admin.FP, CertificateName: "entry-admin",
			Type: "client", Projects: []string{}, Address: "127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.get(tc.chain...)
			if diff := cmp.Diff(tc.want, got.ID); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			if len(tc.chain) > 0 && got.PeerFP != tc.chain[0].FP {
				t.Errorf("PeerCertificate is %s, want the leaf %s", got.PeerFP, tc.chain[0].FP)
			}
			if len(tc.chain) == 0 && got.PeerFP != "" {
				t.Errorf("PeerCertificate set without a certificate")
			}
			if got.Admin != tc.wantAdmin {
				t.Errorf("Admin() = %v, want %v", got.Admin, tc.wantAdmin)
			}
		})
	}
}

// TestAuthenticateValidity checks that a trusted entry counts only while
// the certificate is in date at the injected clock, bounds included.
func TestAuthenticateValidity(t *testing.T) {
	t.Parallel()
	s := newANStack(t)
	now := s.clock.Now()
	nb, na := now.Add(-time.Hour), now.Add(time.Hour)
	c := newANCert(t, "dated", nb, na)
	s.trust(c, events.CertificateTypeClient, false)
	for _, tc := range []struct {
		name        string
		at          time.Time
		wantTrusted bool
	}{
		{name: "ok/in date", at: now, wantTrusted: true},
		{name: "ok/at notBefore", at: nb, wantTrusted: true},
		{name: "ok/at notAfter", at: na, wantTrusted: true},
		{name: "fail/not yet valid", at: nb.Add(-time.Second)},
		{name: "fail/expired", at: na.Add(time.Second)},
		{name: "fail/long expired", at: na.AddDate(1, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.clock.Set(tc.at)
			got := s.get(c)
			if got.ID.Trusted != tc.wantTrusted {
				t.Fatalf("Trusted = %v, want %v (identity %+v)", got.ID.Trusted, tc.wantTrusted, got.ID)
			}
			if !tc.wantTrusted && (got.ID.Method != "" || got.ID.Name != "" || got.ID.Fingerprint != c.FP) {
				t.Errorf("untrusted identity carries %+v", got.ID)
			}
		})
	}
}

// TestAuthenticateFollowsTheStore checks that each request reads the
// current model: an entry counts from the request after its event, and
// stops counting from the request after its removal or re-keying.
func TestAuthenticateFollowsTheStore(t *testing.T) {
	t.Parallel()
	s := newANStack(t)
	now := s.clock.Now()
	c := newANCert(t, "c", now.Add(-time.Hour), now.Add(time.Hour))
	next := newANCert(t, "next", now.Add(-time.Hour), now.Add(time.Hour))
	if got := s.get(c); got.ID.Trusted {
		t.Fatalf("trusted before any event: %+v", got.ID)
	}
	s.trust(c, events.CertificateTypeClient, false)
	if got := s.get(c); !got.ID.Trusted || !got.Admin {
		t.Fatalf("not an admin after trust: %+v", got.ID)
	}
	s.do(events.CertificateUpdated{Fingerprint: c.FP, Name: "renamed", Restricted: true, Projects: []string{"p"}, Certificate: c.PEM()})
	if got := s.get(c); !got.ID.Trusted || got.Admin || got.ID.CertificateName != "renamed" || !got.ID.Restricted {
		t.Fatalf("restriction not applied: %+v", got.ID)
	}
	s.do(events.CertificateUpdated{Fingerprint: c.FP, NewFingerprint: next.FP, Name: "renamed", Restricted: true,
		Projects: []string{"p"}, Certificate: next.PEM()})
	if got := s.get(c); got.ID.Trusted {
		t.Fatalf("old certificate still trusted after re-keying: %+v", got.ID)
	}
	if got := s.get(next); !got.ID.Trusted || got.ID.Name != next.FP {
		t.Fatalf("new certificate not trusted after re-keying: %+v", got.ID)
	}
	s.do(events.CertificateRemoved{Fingerprint: next.FP, Name: "renamed"})
	if got := s.get(next); got.ID.Trusted {
		t.Fatalf("trusted after removal: %+v", got.ID)
	}
}

// TestAuthenticateContext covers the identities hosts establish without
// TLS: the unix socket's local user and a front end's verified chain.
func TestAuthenticateContext(t *testing.T) {
	t.Parallel()
	s := newANStack(t)
	now := s.clock.Now()
	c := newANCert(t, "front", now.Add(-time.Hour), now.Add(time.Hour))
	other := newANCert(t, "other", now.Add(-time.Hour), now.Add(time.Hour))
	s.trust(c, events.CertificateTypeClient, true, "p")

	r := httptest.NewRequest("GET", "/1.0", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	if got := s.auth.Authenticate(r); got.Trusted || got.Address != "192.0.2.7" || got.Fingerprint != "" {
		t.Errorf("plain request: %+v", got)
	}

	local := r.WithContext(authn.WithLocalUser(r.Context(), "alice"))
	want := authn.Identity{Trusted: true, Method: "unix", Name: "alice", Address: "192.0.2.7"}
	if diff := cmp.Diff(want, s.auth.Authenticate(local)); diff != "" {
		t.Errorf("local user (-want +got):\n%s", diff)
	}
	if !s.auth.Authenticate(local).Admin() {
		t.Errorf("the local user is not an admin")
	}

	// A chain placed by the host counts; the leaf decides, as over TLS.
	front := r.WithContext(authn.WithPeerCertificates(r.Context(), []*x509.Certificate{c.X509}))
	got := s.auth.Authenticate(front)
	if !got.Trusted || got.Method != "tls" || got.Fingerprint != c.FP || !got.Restricted || got.PeerCertificate != c.X509 {
		t.Errorf("front end chain: %+v", got)
	}
	if chain := authn.PeerCertificates(front); len(chain) != 1 || chain[0] != c.X509 {
		t.Errorf("PeerCertificates = %v", chain)
	}
	behind := r.WithContext(authn.WithPeerCertificates(r.Context(), []*x509.Certificate{other.X509, c.X509}))
	if got := s.auth.Authenticate(behind); got.Trusted || got.Fingerprint != other.FP {
		t.Errorf("trusted certificate behind an unknown leaf: %+v", got)
	}
	if chain := authn.PeerCertificates(r); chain != nil {
		t.Errorf("PeerCertificates of a plain request = %v", chain)
	}
}

// TestIdentity covers the small methods of Identity and the context helpers.
func TestIdentity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		id        authn.Identity
		wantAdmin bool
		wantActor events.Actor
	}{
		{name: "ok/untrusted", id: authn.Identity{Fingerprint: "ab", Address: "10.0.0.1"},
			wantActor: events.Actor{Name: "ab", Method: "untrusted", Address: "10.0.0.1"}},
		{name: "ok/admin", id: authn.Identity{Trusted: true, Method: "tls", Name: "ab", Fingerprint: "ab", Type: "client", Address: "::1"},
			wantAdmin: true, wantActor: events.Actor{Name: "ab", Method: "tls", Address: "::1"}},
		{name: "ok/restricted", id: authn.Identity{Trusted: true, Method: "tls", Name: "ab", Type: "client", Restricted: true},
			wantActor: events.Actor{Name: "ab", Method: "tls"}},
		{name: "ok/metrics", id: authn.Identity{Trusted: true, Method: "tls", Name: "ab", Type: "metrics"},
			wantActor: events.Actor{Name: "ab", Method: "tls"}},
		{name: "ok/unix", id: authn.Identity{Trusted: true, Method: "unix", Name: "root"},
			wantAdmin: true, wantActor: events.Actor{Name: "root", Method: "unix"}},
		{name: "ok/restricted but untrusted", id: authn.Identity{Restricted: false, Type: "client"},
			wantActor: events.Actor{Method: "untrusted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.id.Admin(); got != tc.wantAdmin {
				t.Errorf("Admin() = %v, want %v", got, tc.wantAdmin)
			}
			if diff := cmp.Diff(tc.wantActor, tc.id.Actor()); diff != "" {
				t.Errorf("Actor() (-want +got):\n%s", diff)
			}
			ctx := authn.WithIdentity(context.Background(), tc.id)
			if diff := cmp.Diff(tc.id, authn.FromContext(ctx)); diff != "" {
				t.Errorf("FromContext (-want +got):\n%s", diff)
			}
		})
	}
	if got := authn.FromContext(context.Background()); got.Trusted || got.Admin() {
		t.Errorf("FromContext of a bare context = %+v, want untrusted", got)
	}

	// The identity's context passes the rest through: the values below
	// it, cancellation, and a newer identity above it wins.
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "below"))
	ctx := authn.WithIdentity(parent, authn.Identity{Name: "first"})
	if v, _ := ctx.Value(key{}).(string); v != "below" {
		t.Errorf("a value below the identity reads %q", v)
	}
	child, stop := context.WithCancel(authn.WithIdentity(ctx, authn.Identity{Name: "second"}))
	defer stop()
	if got := authn.FromContext(child).Name; got != "second" {
		t.Errorf("the newer identity reads %q", got)
	}
	cancel()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling below the identity does not reach a context derived from it")
	}
}

// TestIdentifyAt checks whose clock decides a certificate's validity: the
// caller's reading when the authenticator's clock is time.Now, the
// authenticator's own clock otherwise.
func TestIdentifyAt(t *testing.T) {
	t.Parallel()
	s := newANStack(t)
	now := time.Now()
	c := newANCert(t, "dated", now.Add(-time.Hour), now.Add(time.Hour))
	s.clock.Set(now)
	s.trust(c, events.CertificateTypeClient, false)
	r := tlsRequest(context.Background(), "127.0.0.1:50000", c.X509)
	late := now.Add(2 * time.Hour) // past notAfter

	system := authn.New(s.proj, nil)
	if !system.IdentifyAt(r, now).Trusted {
		t.Error("system clock: not trusted at a reading inside the validity")
	}
	if system.IdentifyAt(r, late).Trusted {
		t.Error("system clock: trusted at a reading past notAfter (the caller's reading was not used)")
	}
	// A fake clock (in date) wins over the caller's reading.
	if !s.auth.IdentifyAt(r, late).Trusted {
		t.Error("fake clock: the caller's reading was used instead of the authenticator's clock")
	}
}

// TestIdentifyMemoBypassed: a keep-alive connection's remembered identity
// never answers for a request that carries a local user or a front end's
// certificates, whichever was set first.
func TestIdentifyMemoBypassed(t *testing.T) {
	t.Parallel()
	s := newANStack(t)
	now := s.clock.Now()
	trusted := newANCert(t, "kept", now.Add(-time.Hour), now.Add(time.Hour))
	stranger := newANCert(t, "stranger", now.Add(-time.Hour), now.Add(time.Hour))
	s.trust(trusted, events.CertificateTypeClient, false)
	conn := authn.WithConnMemo(context.Background())
	req := func(ctx context.Context) *http.Request { return tlsRequest(ctx, "127.0.0.1:50000", trusted.X509) }
	// Twice: the second is answered from the memo.
	for range 2 {
		if id := s.auth.Identify(req(conn)); !id.Trusted || id.Method != authn.MethodTLS {
			t.Fatalf("the connection's own certificate: %+v", id)
		}
	}
	if id := s.auth.Identify(req(authn.WithLocalUser(conn, "alice"))); id.Method != authn.MethodUnix || id.Name != "alice" {
		t.Errorf("local user over the memo: method %q name %q, want unix alice", id.Method, id.Name)
	}
	front := authn.WithPeerCertificates(conn, []*x509.Certificate{stranger.X509})
	if id := s.auth.Identify(req(front)); id.Trusted || id.Fingerprint != stranger.FP {
		t.Errorf("front end's certificate over the memo: trusted %v fingerprint %s, want the stranger's, untrusted", id.Trusted, id.Fingerprint)
	}
	if chain := authn.PeerCertificates(req(front)); len(chain) != 1 || chain[0] != stranger.X509 {
		t.Error("PeerCertificates did not return the front end's chain over the memo")
	}
}

// tlsRequest is GET /1.0 in ctx from remote over TLS 1.3, its peer
// presenting leaf.
func tlsRequest(ctx context.Context, remote string, leaf *x509.Certificate) *http.Request {
	r := httptest.NewRequestWithContext(ctx, "GET", "/1.0", nil)
	r.RemoteAddr = remote
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{leaf}}
	return r
}
