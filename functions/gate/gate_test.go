package gate_test

// The gate in front of real routes, over real TLS 1.3, authenticating
// against a trust store kept on an embedded JetStream by a running
// projector.

import (
	"bytes"
	"context"
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
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

const timeout = 20 * time.Second

// observed is one call to the observer.
type observed struct {
	Kind     string // "auth" or "served"
	Method   string // identity method, for "auth"
	Trusted  bool
	Admitted bool
	Route    string
	Status   int
	Duration time.Duration
}

// recorder is a gate.Observer that keeps every call.
type recorder struct {
	mu    sync.Mutex
	calls []observed
}

func (r *recorder) Authenticated(id authn.Identity, admitted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, observed{Kind: "auth", Method: id.Method, Trusted: id.Trusted, Admitted: admitted})
}

func (r *recorder) Served(route string, status int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, observed{Kind: "served", Route: route, Status: status, Duration: d})
}

func (r *recorder) take() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// stepClock advances by one millisecond at every reading.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

// seen is what the echo routes reply: the identity the gate passed on.
type seen struct {
	Trusted     bool   `json:"trusted"`
	Method      string `json:"method"`
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	response.Sync(w, seen{Trusted: id.Trusted, Method: id.Method, Type: id.Type, Fingerprint: id.Fingerprint})
}

// fixture is a gate over three echo routes on a TLS server.
type fixture struct {
	srv *httptest.Server
	obs *recorder
}

func newFixture(t *testing.T, trust ...events.CertificateTrusted) *fixture {
	t.Helper()
	return newFixtureWith(t, []gate.Route{
		{Method: "GET", Path: "/open", Untrusted: true, Handler: http.HandlerFunc(echo)},
		{Method: "GET", Path: "/closed", Handler: http.HandlerFunc(echo)},
		{Method: "GET", Path: "/metrics", Metrics: true, Handler: http.HandlerFunc(echo)},
		{Method: "POST", Path: "/open", Untrusted: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			response.Created(w, "/open/1")
		})},
	}, trust...)
}

// newFixtureWith is a gate over routes on a TLS server, with trust in its
// trust store.
func newFixtureWith(t *testing.T, routes []gate.Route, trust ...events.CertificateTrusted) *fixture {
	t.Helper()
	st, _ := natstest.OpenStore(t)
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c := &commit.Committer{Model: p, Log: st, Now: time.Now, NewID: uuid.NewString, Source: "/trustlog/gate-test"}
	wctx, wcancel := context.WithTimeout(context.Background(), timeout)
	defer wcancel()
	for _, e := range trust {
		if _, err := c.Do(wctx, events.Actor{Name: "test", Method: "unix"}, func(*projections.Model) ([]events.Payload, error) {
			return []events.Payload{e}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	obs := &recorder{}
	h := gate.New(gate.Config{
		Authenticator: authn.New(p, nil),
		Observer:      obs,
		Now:           (&stepClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}).Now,
		Logger:        slog.New(slog.DiscardHandler),
	}, routes...)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, obs: obs}
}

// client returns a TLS 1.3 client presenting cert (none if nil).
func (f *fixture) client(t *testing.T, cert *tls.Certificate) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.srv.Certificate())
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

type reply struct {
	code   int
	header http.Header
	env    api.Response
}

func (f *fixture) do(t *testing.T, c *http.Client, method, path string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return f.exchange(t, c, req)
}

// exchange sends req with c and decodes the envelope of the answer.
func (f *fixture) exchange(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var env api.Response
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: not an envelope: %s", req.Method, req.URL.Path, raw)
	}
	return reply{code: resp.StatusCode, header: resp.Header, env: env}
}

// newCert makes a P-384 client certificate and the event trusting it.
func newCert(t *testing.T, typ string) (*tls.Certificate, events.CertificateTrusted) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: typ},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, events.CertificateTrusted{
		Fingerprint: hex.EncodeToString(sum[:]), Name: typ, Type: typ, Projects: []string{},
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}
}

// TestAdmission runs each kind of caller against each kind of route, with
// the headers that change the gate's answer.
func TestAdmission(t *testing.T) {
	t.Parallel()
	adminCert, adminEv := newCert(t, events.CertificateTypeClient)
	metricsCert, metricsEv := newCert(t, events.CertificateTypeMetrics)
	strangerCert, strangerEv := newCert(t, events.CertificateTypeClient)
	f := newFixture(t, adminEv, metricsEv)
	callers := map[string]*http.Client{
		"anonymous": f.client(t, nil),
		"stranger":  f.client(t, strangerCert),
		"admin":     f.client(t, adminCert),
		"metrics":   f.client(t, metricsCert),
	}
	const forbidden, fetchSite = "not authorized", "Forbidden Sec-Fetch-Site header value"
	for _, tc := range []struct {
		name     string
		caller   string
		method   string
		path     string
		header   map[string]string
		wantCode int
		wantErr  string
		wantSeen *seen
	}{
		{name: "ok/anonymous on an open route", caller: "anonymous", method: "GET", path: "/open", wantCode: 200, wantSeen: &seen{}},
		{name: "ok/stranger on an open route", caller: "stranger", method: "GET", path: "/open", wantCode: 200,
			wantSeen: &seen{Fingerprint: strangerEv.Fingerprint}},
		{name: "ok/anonymous post on an open route", caller: "anonymous", method: "POST", path: "/open", wantCode: 201},
		{name: "fail/anonymous on a closed route", caller: "anonymous", method: "GET", path: "/closed", wantCode: 403, wantErr: forbidden},
		{name: "fail/stranger on a closed route", caller: "stranger", method: "GET", path: "/closed", wantCode: 403, wantErr: forbidden},
		{name: "ok/admin on a closed route", caller: "admin", method: "GET", path: "/closed", wantCode: 200,
			wantSeen: &seen{Trusted: true, Method: "tls", Type: "client", Fingerprint: adminEv.Fingerprint}},
		{name: "fail/x-incus-authenticated turns the open route into a refusal", caller: "anonymous", method: "GET", path: "/open",
			header: map[string]string{"X-Incus-authenticated": "true"}, wantCode: 403, wantErr: forbidden},
		{name: "fail/x-lxd-authenticated turns the open route into a refusal", caller: "stranger", method: "GET", path: "/open",
			header: map[string]string{"X-LXD-authenticated": "true"}, wantCode: 403, wantErr: forbidden},
		{name: "fail/x-incus-authenticated any value but false", caller: "anonymous", method: "POST", path: "/open",
			header: map[string]string{"X-Incus-authenticated": "1"}, wantCode: 403, wantErr: forbidden},
		{name: "ok/x-incus-authenticated false", caller: "anonymous", method: "GET", path: "/open",
			header: map[string]string{"X-Incus-authenticated": "False"}, wantCode: 200, wantSeen: &seen{}},
		{name: "ok/x-incus-authenticated for a trusted caller", caller: "admin", method: "GET", path: "/open",
			header: map[string]string{"X-Incus-authenticated": "true", "X-LXD-authenticated": "true"}, wantCode: 200,
			wantSeen: &seen{Trusted: true, Method: "tls", Type: "client", Fingerprint: adminEv.Fingerprint}},
		{name: "fail/cross-site browser request", caller: "admin", method: "GET", path: "/closed",
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}, wantCode: 403, wantErr: fetchSite},
		{name: "fail/same-site browser request", caller: "anonymous", method: "GET", path: "/open",
			header: map[string]string{"Sec-Fetch-Site": "same-site"}, wantCode: 403, wantErr: fetchSite},
		{name: "ok/same-origin browser request", caller: "admin", method: "GET", path: "/closed",
			header: map[string]string{"Sec-Fetch-Site": "same-origin"}, wantCode: 200,
			wantSeen: &seen{Trusted: true, Method: "tls", Type: "client", Fingerprint: adminEv.Fingerprint}},
		{name: "ok/user-initiated browser request", caller: "anonymous", method: "GET", path: "/open",
			header: map[string]string{"Sec-Fetch-Site": "none"}, wantCode: 200, wantSeen: &seen{}},
		{name: "fail/metrics certificate on a closed route", caller: "metrics", method: "GET", path: "/closed", wantCode: 403, wantErr: forbidden},
		{name: "ok/metrics certificate sees the untrusted view", caller: "metrics", method: "GET", path: "/open", wantCode: 200,
			wantSeen: &seen{Fingerprint: metricsEv.Fingerprint}},
		{name: "ok/metrics certificate on the metrics route", caller: "metrics", method: "GET", path: "/metrics", wantCode: 200,
			wantSeen: &seen{Trusted: true, Method: "tls", Type: "metrics", Fingerprint: metricsEv.Fingerprint}},
		{name: "ok/admin on the metrics route", caller: "admin", method: "GET", path: "/metrics", wantCode: 200,
			wantSeen: &seen{Trusted: true, Method: "tls", Type: "client", Fingerprint: adminEv.Fingerprint}},
		{name: "fail/anonymous on the metrics route", caller: "anonymous", method: "GET", path: "/metrics", wantCode: 403, wantErr: forbidden},
		{name: "fail/unknown path", caller: "admin", method: "GET", path: "/nowhere", wantCode: 404, wantErr: "not found"},
		{name: "fail/unknown method", caller: "admin", method: "DELETE", path: "/closed", wantCode: 404, wantErr: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.do(t, callers[tc.caller], tc.method, tc.path, tc.header)
			if got.code != tc.wantCode {
				t.Fatalf("HTTP %d, want %d (%+v)", got.code, tc.wantCode, got.env)
			}
			if tc.wantErr != "" {
				want := api.Response{Type: "error", ErrorCode: tc.wantCode, Error: tc.wantErr, Metadata: json.RawMessage("null")}
				if diff := cmp.Diff(want, got.env); diff != "" {
					t.Errorf("envelope (-want +got):\n%s", diff)
				}
				if got.header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("no nosniff header on an error")
				}
			}
			if tc.wantSeen != nil {
				var s seen
				if err := json.Unmarshal(got.env.Metadata, &s); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(*tc.wantSeen, s); diff != "" {
					t.Errorf("identity passed to the route (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestObserver checks the observer sees each decision and each response,
// with the route pattern, the status written and the duration measured on
// the gate's clock.
func TestObserver(t *testing.T) {
	t.Parallel()
	adminCert, adminEv := newCert(t, events.CertificateTypeClient)
	f := newFixture(t, adminEv)
	anon, admin := f.client(t, nil), f.client(t, adminCert)
	for _, tc := range []struct {
		name   string
		c      *http.Client
		method string
		path   string
		header map[string]string
		want   []observed
	}{
		{name: "ok/admitted", c: admin, method: "GET", path: "/closed", want: []observed{
			{Kind: "auth", Method: "tls", Trusted: true, Admitted: true},
			{Kind: "served", Route: "GET /closed", Status: 200, Duration: time.Millisecond},
		}},
		{name: "ok/admitted untrusted", c: anon, method: "POST", path: "/open", want: []observed{
			{Kind: "auth", Admitted: true},
			{Kind: "served", Route: "POST /open", Status: 201, Duration: time.Millisecond},
		}},
		{name: "fail/refused", c: anon, method: "GET", path: "/closed", want: []observed{
			{Kind: "auth", Admitted: false},
			{Kind: "served", Route: "GET /closed", Status: 403, Duration: time.Millisecond},
		}},
		// A refusal before authentication is served but not a decision.
		{name: "fail/browser", c: admin, method: "GET", path: "/closed", header: map[string]string{"Sec-Fetch-Site": "cross-site"},
			want: []observed{{Kind: "served", Route: "GET /closed", Status: 403, Duration: time.Millisecond}}},
		{name: "fail/unknown path is not observed", c: admin, method: "GET", path: "/nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.obs.take()
			f.do(t, tc.c, tc.method, tc.path, tc.header)
			if diff := cmp.Diff(tc.want, f.obs.take()); diff != "" {
				t.Errorf("observer calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNilObserver checks the gate works without an observer and with the
// default clock and logger.
func TestNilObserver(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	h := gate.New(gate.Config{Authenticator: authn.New(p, nil)},
		gate.Route{Method: "GET", Path: "/open", Untrusted: true, Handler: http.HandlerFunc(echo)})
	for _, tc := range []struct {
		name     string
		path     string
		wantCode int
	}{
		{"ok/open", "/open", 200},
		{"fail/unknown", "/x", 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.wantCode || !bytes.HasPrefix(rec.Body.Bytes(), []byte(`{"type":`)) {
			t.Errorf("%s: %d %s", tc.name, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
}
