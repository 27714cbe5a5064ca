package tokens_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/functions/sealing"
	"github.com/trustlog/trustlog/functions/tokens"
	"github.com/trustlog/trustlog/projections"
)

// waitTimeout bounds every wait of these tests on the stream.
const waitTimeout = 20 * time.Second

var serverFP = strings.Repeat("5e", 32)

// fakeHost is the tokens.Host of these tests.
type fakeHost struct{ addrs []string }

func (h fakeHost) Certificate() (string, string) { return "", serverFP }
func (h fakeHost) Addresses() []string           { return h.addrs }
func (h fakeHost) ServerName() string            { return "testhost" }

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// instance is one serving instance: its own connection, store, projector,
// committer and token handler, on a shared JetStream stream.
type instance struct {
	store *natsstore.Store
	proj  *projections.Projector
	c     *commit.Committer
	h     *tokens.Handler
}

// cluster is a JetStream server with the key and clock its instances share.
type cluster struct {
	t     *testing.T
	open  func() *natsstore.Store // opens the stream over a new connection
	box   *sealing.Box
	clock *clock
	host  fakeHost
}

func newCluster(t *testing.T, host fakeHost) (*cluster, *instance) {
	t.Helper()
	key := make([]byte, sealing.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	box, err := sealing.New(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, srv := natstest.OpenStore(t)
	open := func() *natsstore.Store {
		t.Helper()
		nc := natstest.Connect(t, srv)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		st, err := natsstore.Open(ctx, nc, natsstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	c := &cluster{t: t, open: open, box: box, clock: &clock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}, host: host}
	return c, c.instance(st, rand.Reader)
}

// join starts another instance on the same stream, over its own connection.
func (c *cluster) join() *instance {
	c.t.Helper()
	return c.instance(c.open(), rand.Reader)
}

func (c *cluster) instance(st *natsstore.Store, random io.Reader) *instance {
	c.t.Helper()
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	syncCtx, stop := context.WithTimeout(context.Background(), waitTimeout)
	defer stop()
	if err := p.Sync(syncCtx); err != nil {
		c.t.Fatal(err)
	}
	cm := &commit.Committer{Model: p, Log: st, Now: c.clock.Now, NewID: uuid.NewString, Source: "/trustlog/test"}
	h := tokens.New(tokens.Config{
		Model: p, Committer: cm, Host: c.host, Box: c.box,
		Now: c.clock.Now, Random: random, NewID: uuid.NewString, Log: slog.New(slog.DiscardHandler),
	})
	return &instance{store: st, proj: p, c: cm, h: h}
}

var admin = events.Actor{Name: "root", Method: "unix"}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// setConfig records a configuration value through in's committer.
func (in *instance) setConfig(t *testing.T, key, value string) {
	t.Helper()
	_, err := in.c.Do(ctxT(t), admin, func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{events.ConfigChanged{Key: key, Value: value}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// issue issues a token and returns its operation and secret.
func (in *instance) issue(t *testing.T, req api.CertificatesPost) (api.Operation, string) {
	t.Helper()
	op, err := in.h.Issue(ctxT(t), admin, req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	secret, _ := op.Metadata["secret"].(string)
	return op, secret
}

// stored returns every record on the stream, decoded.
func (in *instance) stored(t *testing.T) []events.Envelope {
	t.Helper()
	ctx := ctxT(t)
	last, err := in.store.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := in.store.Read(ctx, 1, last)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]events.Envelope, len(recs))
	for i, r := range recs {
		if out[i], err = events.Decode(r.Raw); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (in *instance) lastSeq(t *testing.T) uint64 {
	t.Helper()
	seq, err := in.store.LastSeq(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func countTypes(envs []events.Envelope) map[string]int {
	out := map[string]int{}
	for _, e := range envs {
		out[e.Type]++
	}
	return out
}

// newCert returns a self-signed P-384 client certificate valid around the
// tests' clock.
func newCert(t *testing.T) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// tokenFor builds the token string from an issued operation, as clients do.
func tokenFor(t *testing.T, op api.Operation) string {
	t.Helper()
	raw, err := json.Marshal(op.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Secret      string    `json:"secret"`
		Fingerprint string    `json:"fingerprint"`
		Addresses   []string  `json:"addresses"`
		ExpiresAt   time.Time `json:"expiresAt"`
		Request     struct {
			Name string `json:"name"`
		} `json:"request"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return api.CertificateAddToken{ClientName: m.Request.Name, Fingerprint: m.Fingerprint, Addresses: m.Addresses,
		Secret: m.Secret, ExpiresAt: m.ExpiresAt}.Encode()
}

// wantStatus checks that err is a client error with status and, if msg is
// not empty, that message.
func wantStatus(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var e *response.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want a %d response error", err, status)
	}
	if e.Status != status || (msg != "" && e.Message != msg) {
		t.Fatalf("error = %d %q, want %d %q", e.Status, e.Message, status, msg)
	}
}

// TestIssueWithoutAddresses checks that a server that advertises no
// address refuses to issue a token, as LXD does, and appends nothing.
func TestIssueWithoutAddresses(t *testing.T) {
	t.Parallel()
	_, in := newCluster(t, fakeHost{})
	before := in.lastSeq(t)
	_, err := in.h.Issue(ctxT(t), admin, api.CertificatesPost{Name: "c", Token: true})
	wantStatus(t, err, http.StatusBadRequest, "Can't issue token when server isn't listening on network")
	if after := in.lastSeq(t); after != before {
		t.Fatalf("stream moved from %d to %d", before, after)
	}
	// An advertised address is enough.
	in.setConfig(t, tokens.KeyAdvertise, "a.example:443")
	op, _ := in.issue(t, api.CertificatesPost{Name: "c", Token: true})
	if diff := cmp.Diff([]string{"a.example:443"}, op.Metadata["addresses"]); diff != "" {
		t.Fatalf("addresses (-want +got):\n%s", diff)
	}
}

func TestIssueEmptyName(t *testing.T) {
	t.Parallel()
	_, in := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	_, err := in.h.Issue(ctxT(t), admin, api.CertificatesPost{Token: true})
	wantStatus(t, err, http.StatusBadRequest, "Client name must not be empty")
}

// TestIssueAddresses checks which addresses a token advertises.
func TestIssueAddresses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		advertise string
		want      []string
	}{
		{"ok/listen-addresses", "", []string{"192.0.2.7:8443", "[2001:db8::7]:8443"}},
		{"ok/advertised", "a.example:443,192.0.2.1:8443", []string{"a.example:443", "192.0.2.1:8443"}},
		{"ok/advertised-spaces-and-empty-parts", " a.example:443 , ,192.0.2.1:8443,", []string{"a.example:443", "192.0.2.1:8443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, in := newCluster(t, fakeHost{addrs: []string{"192.0.2.7:8443", "[2001:db8::7]:8443"}})
			if tc.advertise != "" {
				in.setConfig(t, tokens.KeyAdvertise, tc.advertise)
			}
			op, _ := in.issue(t, api.CertificatesPost{Name: "c", Token: true})
			if diff := cmp.Diff(tc.want, op.Metadata["addresses"]); diff != "" {
				t.Fatalf("addresses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIssueEvent checks the TokenIssued event: the secret comes from the
// injected source, and only its hash and its sealed form are stored.
func TestIssueEvent(t *testing.T) {
	t.Parallel()
	c, first := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	entropy := bytes.Repeat([]byte{0xab}, 32)
	in := c.instance(first.store, io.MultiReader(bytes.NewReader(entropy), rand.Reader))
	op, secret := in.issue(t, api.CertificatesPost{Name: "alice", Token: true, Restricted: true, Projects: []string{"p"}, Description: "d"})
	if want := hex.EncodeToString(entropy); secret != want {
		t.Fatalf("secret = %q, want the hex of the injected bytes %q", secret, want)
	}
	envs := in.stored(t)
	last := envs[len(envs)-1]
	if last.Type != "trustlog.token.issued.v1" || last.Subject != "trustlog.token."+op.ID {
		t.Fatalf("last event = %s on %s", last.Type, last.Subject)
	}
	if bytes.Contains(last.Data, []byte(secret)) {
		t.Fatalf("the event holds the secret in clear: %s", last.Data)
	}
	p, err := last.Payload()
	if err != nil {
		t.Fatal(err)
	}
	ev := p.(*events.TokenIssued)
	sum := sha256.Sum256([]byte(secret))
	if ev.SecretHash != hex.EncodeToString(sum[:]) {
		t.Errorf("secret_sha256 = %s, want the SHA-256 of the secret text", ev.SecretHash)
	}
	if got, err := c.box.Open(ev.SealedSecret, []byte(op.ID)); err != nil || string(got) != secret {
		t.Errorf("sealed secret opens to %q, %v", got, err)
	}
	if _, err := c.box.Open(ev.SealedSecret, []byte("another-id")); !errors.Is(err, sealing.ErrOpen) {
		t.Errorf("sealed secret opens under another token id: %v", err)
	}
	want := events.TokenIssued{
		ID: op.ID, Name: "alice", Type: "client", Restricted: true, Projects: []string{"p"}, Description: "d",
		SecretHash: ev.SecretHash, SealedSecret: ev.SealedSecret, Fingerprint: serverFP,
		Addresses: []string{"127.0.0.1:8443"}, ExpiresAt: c.clock.Now().Add(24 * time.Hour),
	}
	if diff := cmp.Diff(want, *ev); diff != "" {
		t.Errorf("TokenIssued (-want +got):\n%s", diff)
	}
	if !bytes.Contains(last.Data, []byte(`"projects":["p"]`)) {
		t.Errorf("projects not stored: %s", last.Data)
	}
	// No projects are stored as [], never null.
	in.issue(t, api.CertificatesPost{Name: "bob", Token: true})
	envs = in.stored(t)
	if data := envs[len(envs)-1].Data; !bytes.Contains(data, []byte(`"projects":[]`)) {
		t.Errorf("empty projects stored as %s", data)
	}
}

// TestRedeem checks a redemption against the read model: the issuer's
// choices make the entry, the token is consumed, and each way a token can
// be dead is a 403.
func TestRedeem(t *testing.T) {
	t.Parallel()
	c, in := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	ctx := ctxT(t)
	op, _ := in.issue(t, api.CertificatesPost{Name: "alice", Token: true, Restricted: true, Projects: []string{"p1", "p2"}, Description: "laptop"})
	tok := tokenFor(t, op)
	cert := newCert(t)
	fp, err := in.h.Redeem(ctx, events.Actor{Name: fingerprint(cert), Method: "untrusted"}, tok, cert)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if fp != fingerprint(cert) {
		t.Fatalf("Redeem = %s, want %s", fp, fingerprint(cert))
	}
	entry, ok := in.proj.Snapshot().CertificateByFingerprint(fp)
	if !ok {
		t.Fatal("redeemed certificate is not trusted")
	}
	got := api.Certificate{Name: entry.Name, Type: entry.Type, Restricted: entry.Restricted, Projects: entry.Projects, Description: entry.Description}
	want := api.Certificate{Name: "alice", Type: "client", Restricted: true, Projects: []string{"p1", "p2"}, Description: "laptop"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entry (-want +got):\n%s", diff)
	}
	tk, _ := in.proj.Snapshot().Token(op.ID)
	if tk.State != projections.TokenRedeemed || tk.RedeemedBy != fp {
		t.Errorf("token state = %s by %s", tk.State, tk.RedeemedBy)
	}
	envs := in.stored(t)
	n := len(envs)
	if envs[n-2].Type != "trustlog.token.redeemed.v1" || envs[n-1].Type != "trustlog.certificate.trusted.v1" {
		t.Errorf("last events = %s, %s", envs[n-2].Type, envs[n-1].Type)
	}

	_, err = in.h.Redeem(ctx, admin, tok, newCert(t))
	wantStatus(t, err, http.StatusForbidden, "No matching certificate add operation found")

	// A certificate already trusted does not consume a token.
	op, _ = in.issue(t, api.CertificatesPost{Name: "again", Token: true})
	tok = tokenFor(t, op)
	before := in.lastSeq(t)
	_, err = in.h.Redeem(ctx, admin, tok, cert)
	wantStatus(t, err, http.StatusConflict, "Certificate already in trust store")
	if after := in.lastSeq(t); after != before {
		t.Errorf("a refused redemption appended events (%d → %d)", before, after)
	}
	if _, err := in.h.Redeem(ctx, admin, tok, newCert(t)); err != nil {
		t.Errorf("token burnt by a conflicting certificate: %v", err)
	}

	// Expiry is checked against the handler's clock; the late attempt burns
	// the token with a TokenExpired event.
	in.setConfig(t, tokens.KeyExpiry, "5S")
	op, _ = in.issue(t, api.CertificatesPost{Name: "late", Token: true})
	tok = tokenFor(t, op)
	c.clock.Advance(5 * time.Second) // exactly at expiresAt: expired
	_, err = in.h.Redeem(ctx, admin, tok, newCert(t))
	wantStatus(t, err, http.StatusForbidden, "Token has expired")
	if envs := in.stored(t); envs[len(envs)-1].Type != "trustlog.token.expired.v1" {
		t.Errorf("last event = %s, want trustlog.token.expired.v1", envs[len(envs)-1].Type)
	}
	_, err = in.h.Redeem(ctx, admin, tok, newCert(t))
	wantStatus(t, err, http.StatusForbidden, "No matching certificate add operation found")

	// Undecodable tokens are the default 403 and append nothing.
	before = in.lastSeq(t)
	for _, bad := range []string{"", "garbage", tok[:10]} {
		_, err = in.h.Redeem(ctx, admin, bad, newCert(t))
		wantStatus(t, err, http.StatusForbidden, "")
	}
	if after := in.lastSeq(t); after != before {
		t.Errorf("bad tokens appended events (%d → %d)", before, after)
	}
}

// TestRedeemAcrossInstances races two instances, each with its own
// projector and committer, for the same tokens: the conditional append
// lets exactly one redemption of each token through.
func TestRedeemAcrossInstances(t *testing.T) {
	t.Parallel()
	c, a := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	b := c.join()
	const rounds, perInstance = 8, 4
	for round := range rounds {
		op, _ := a.issue(t, api.CertificatesPost{Name: "raced", Token: true})
		tok := tokenFor(t, op)
		if err := b.proj.WaitFor(ctxT(t), a.proj.Snapshot().Seq()); err != nil {
			t.Fatal(err)
		}
		certs := make([]*x509.Certificate, 2*perInstance)
		for i := range certs {
			certs[i] = newCert(t)
		}
		errs := make([]error, len(certs))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range certs {
			in := a
			if i%2 == 1 {
				in = b
			}
			wg.Go(func() {
				<-start
				_, errs[i] = in.h.Redeem(ctxT(t), admin, tok, certs[i])
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			wantStatus(t, err, http.StatusForbidden, "No matching certificate add operation found")
		}
		if won != 1 {
			t.Fatalf("round %d: %d redemptions succeeded, want 1 (%v)", round, won, errs)
		}
	}
	counts := countTypes(a.stored(t))
	if counts["trustlog.token.redeemed.v1"] != rounds || counts["trustlog.certificate.trusted.v1"] != rounds {
		t.Fatalf("stream holds %v, want %d redemptions and entries", counts, rounds)
	}
}

// TestSweep checks that the sweeper expires each expired token once, in
// bounded batches, even with two instances sweeping at once.
func TestSweep(t *testing.T) {
	t.Parallel()
	c, a := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	b := c.join()
	ctx := ctxT(t)
	a.setConfig(t, tokens.KeyExpiry, "5S")
	const expiring = 130 // more than one batch of 128
	ids := map[string]bool{}
	for range expiring {
		op, _ := a.issue(t, api.CertificatesPost{Name: "short", Token: true})
		ids[op.ID] = true
	}
	a.setConfig(t, tokens.KeyExpiry, "1H")
	live, _ := a.issue(t, api.CertificatesPost{Name: "live", Token: true})

	if n, err := a.h.Sweep(ctx, c.clock.Now().Add(4*time.Second)); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry = %d, %v; want 0", n, err)
	}
	c.clock.Advance(6 * time.Second)
	if err := b.proj.WaitFor(ctx, a.proj.Snapshot().Seq()); err != nil {
		t.Fatal(err)
	}
	var na, nb int
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() { na, errA = a.h.Sweep(ctx, c.clock.Now()) })
	wg.Go(func() { nb, errB = b.h.Sweep(ctx, c.clock.Now()) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("Sweep errors: %v, %v", errA, errB)
	}
	if na+nb != expiring {
		t.Fatalf("sweeps expired %d + %d tokens, want %d in all", na, nb, expiring)
	}
	expired := map[string]int{}
	for _, e := range a.stored(t) {
		if e.Type != "trustlog.token.expired.v1" {
			continue
		}
		p, err := e.Payload()
		if err != nil {
			t.Fatal(err)
		}
		expired[p.(*events.TokenExpired).ID]++
	}
	for id := range ids {
		if expired[id] != 1 {
			t.Errorf("token %s expired %d times, want once", id, expired[id])
		}
	}
	if len(expired) != expiring {
		t.Errorf("%d tokens expired, want %d (the live one must stay)", len(expired), expiring)
	}
	if tk, _ := a.proj.Snapshot().Token(live.ID); !tk.Pending() {
		t.Errorf("live token state = %s", tk.State)
	}
	before := a.lastSeq(t)
	if n, err := a.h.Sweep(ctx, c.clock.Now()); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v; want 0", n, err)
	}
	if after := a.lastSeq(t); after != before {
		t.Errorf("second sweep appended events (%d → %d)", before, after)
	}
}

// TestRunSweeper checks that the background loop stops when its context
// ends.
func TestRunSweeper(t *testing.T) {
	t.Parallel()
	_, in := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.h.RunSweeper(ctx, time.Hour) }()
	cancel()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("RunSweeper did not return after its context ended")
	}
}

// serve runs the operations routes as the gate would, with caller as the
// authenticated identity.
func serve(in *instance, caller authn.Identity, method, path string) (int, api.Response) {
	mux := http.NewServeMux()
	for _, rt := range in.h.Routes() {
		mux.Handle(rt.Method+" "+rt.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rt.Handler.ServeHTTP(w, r.WithContext(authn.WithIdentity(r.Context(), caller)))
		}))
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var env api.Response
	_ = json.Unmarshal(rec.Body.Bytes(), &env)
	return rec.Code, env
}

// TestOperationsRoutes checks the operations API as admins and as
// restricted clients see it.
func TestOperationsRoutes(t *testing.T) {
	t.Parallel()
	_, in := newCluster(t, fakeHost{addrs: []string{"127.0.0.1:8443"}})
	op, secret := in.issue(t, api.CertificatesPost{Name: "alice", Token: true})
	rootID := authn.Identity{Trusted: true, Method: authn.MethodUnix, Name: "root"}
	restricted := authn.Identity{Trusted: true, Method: authn.MethodTLS, Name: "ff", Type: "client", Restricted: true}
	metrics := authn.Identity{Trusted: true, Method: authn.MethodTLS, Name: "ee", Type: "metrics"}
	url := tokens.OperationURL(op.ID)

	code, env := serve(in, rootID, "GET", "/1.0/operations")
	if code != 200 || string(env.Metadata) != `{"running":["`+url+`"]}` {
		t.Errorf("admin list = %d %s", code, env.Metadata)
	}
	code, env = serve(in, rootID, "GET", "/1.0/operations?recursion=1")
	if code != 200 || !bytes.Contains(env.Metadata, []byte(secret)) {
		t.Errorf("admin recursive list = %d %s, want the operation with its secret", code, env.Metadata)
	}
	code, env = serve(in, rootID, "GET", url)
	if code != 200 || !bytes.Contains(env.Metadata, []byte(secret)) {
		t.Errorf("admin get = %d %s", code, env.Metadata)
	}
	for name, id := range map[string]authn.Identity{"restricted": restricted, "metrics": metrics} {
		if code, env := serve(in, id, "GET", "/1.0/operations?recursion=1"); code != 200 || string(env.Metadata) != `{"running":[]}` {
			t.Errorf("%s list = %d %s, want no operations", name, code, env.Metadata)
		}
		if code, env := serve(in, id, "GET", url); code != 404 || env.Error != "Operation not found" {
			t.Errorf("%s get = %d %q, want 404", name, code, env.Error)
		}
		if code, _ := serve(in, id, "DELETE", url); code != 403 {
			t.Errorf("%s delete = %d, want 403", name, code)
		}
	}
	if code, env := serve(in, rootID, "GET", tokens.OperationURL(uuid.NewString())); code != 404 || env.Error != "Operation not found" {
		t.Errorf("unknown get = %d %q", code, env.Error)
	}
	if code, env := serve(in, rootID, "DELETE", tokens.OperationURL(uuid.NewString())); code != 404 || env.Error != "Operation not found" {
		t.Errorf("unknown delete = %d %q", code, env.Error)
	}
	if code, _ := serve(in, rootID, "DELETE", url); code != 200 {
		t.Fatalf("delete = %d", code)
	}
	if code, env := serve(in, rootID, "DELETE", url); code != 400 || env.Error != "Only running operations can be cancelled" {
		t.Errorf("second delete = %d %q", code, env.Error)
	}
	code, env = serve(in, rootID, "GET", url)
	var got api.Operation
	if err := json.Unmarshal(env.Metadata, &got); err != nil || code != 200 {
		t.Fatalf("get cancelled = %d %v", code, err)
	}
	if got.Status != "Cancelled" || got.StatusCode != 401 || got.MayCancel || got.Metadata["secret"] != nil {
		t.Errorf("cancelled operation = %s %d may_cancel=%v secret=%v", got.Status, got.StatusCode, got.MayCancel, got.Metadata["secret"] != nil)
	}
	if code, env := serve(in, rootID, "GET", "/1.0/operations"); code != 200 || string(env.Metadata) != `{"running":[]}` {
		t.Errorf("list after revoke = %d %s", code, env.Metadata)
	}
}
