package service_test

// The harness of the API tests: the service as the local binary assembles
// it, over a natsstore.Store on an embedded JetStream and a running
// projector, served over real TLS 1.3 (client certificates requested, not
// verified, as the daemon does) and over a unix socket whose connections
// are the local admin.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/service"
	"github.com/trustlog/trustlog/functions/watch"
	"github.com/trustlog/trustlog/projections"
)

// timeout bounds every start, request and read of the stream.
const timeout = 20 * time.Second

// localUser is the user the unix socket reports.
const localUser = "root"

// clock is the injected clock of a stack.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// host is the serverinfo.Host of the stack: the TLS listener's certificate
// and address.
type host struct {
	mu            sync.Mutex
	pem, fp, addr string
	more          []string // further addresses listened on
}

func (h *host) Certificate() (string, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pem, h.fp
}

func (h *host) Addresses() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{h.addr}, h.more...)
}

func (h *host) ServerName() string { return "testhost" }

// set changes what the host serves, as a certificate rotation or a new
// listener would.
func (h *host) set(pem, fp string, more ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pem, h.fp, h.more = pem, fp, more
}

// stack is one API instance under test.
type stack struct {
	t     *testing.T
	store *natsstore.Store
	proj  *projections.Projector
	clock *clock
	host  *host
	https *httptest.Server
	admin *http.Client // over the unix socket
	log   *bytes.Buffer
	logMu *sync.Mutex
}

// start is the instant every stack's clock starts at.
var start = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func newStack(t *testing.T) *stack {
	t.Helper()
	st, _ := natstest.OpenStore(t)
	return newStackOn(t, st, nil)
}

// stackFeed is a stream as both the projector and the audit routes read it.
type stackFeed interface {
	projections.Feed
	watch.Feed
}

// newStackOn is newStack over st. With feed set, the projector follows
// feed instead of st, and the service serves the watch routes (events
// and audit) over feed too.
func newStackOn(t *testing.T, st *natsstore.Store, feed stackFeed) *stack {
	t.Helper()
	var follow projections.Feed = st
	if feed != nil {
		follow = feed
	}
	p := projections.NewProjector(follow, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sctx, scancel := context.WithTimeout(context.Background(), timeout)
	defer scancel()
	if err := p.Sync(sctx); err != nil {
		t.Fatal(err)
	}

	s := &stack{t: t, store: st, proj: p, clock: &clock{now: start}, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	serverCert := newCert(t, "p384", "trustlog-test-server", start.Add(-time.Hour), start.AddDate(10, 0, 0),
		func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} })
	s.https = httptest.NewUnstartedServer(nil)
	s.host = &host{pem: serverCert.PEM(), fp: serverCert.FP, addr: s.https.Listener.Addr().String()}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	cfg := service.Config{
		Model: p, Log: st, Stream: st, Host: s.host, Source: "/trustlog/testhost",
		Now: s.clock.Now, SealingKey: key,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{s.logMu, s.log}, nil)),
	}
	if feed != nil {
		cfg.Feed = feed
	}
	svc, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.https.Config.Handler = svc
	s.https.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequestClientCert,
		Certificates: []tls.Certificate{serverCert.Pair},
	}
	s.https.StartTLS()
	t.Cleanup(s.https.Close)

	// The unix socket, in a short directory: socket paths are limited to
	// about 100 bytes and t.TempDir() carries the test name.
	dir, err := os.MkdirTemp("", "tlsvc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "unix.socket")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	unix := httptest.NewUnstartedServer(svc)
	unix.Listener.Close()
	unix.Listener = ln
	unix.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return authn.WithLocalUser(ctx, localUser)
	}
	unix.Start()
	t.Cleanup(unix.Close)
	s.admin = &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(s.admin.CloseIdleConnections)
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logText returns what the service logged so far.
func (s *stack) logText() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// cert is a certificate with its key.
type cert struct {
	Pair tls.Certificate
	X509 *x509.Certificate
	FP   string
}

func (c *cert) PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.X509.Raw}))
}

func (c *cert) B64() string { return base64.StdEncoding.EncodeToString(c.X509.Raw) }

// rsaKeys caches RSA keys by size: generating them is slow under -race,
// and the tests only need distinct certificates, not distinct keys.
var rsaKeys sync.Map

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	if k, ok := rsaKeys.Load(bits); ok {
		return k.(*rsa.PrivateKey)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	actual, _ := rsaKeys.LoadOrStore(bits, k)
	return actual.(*rsa.PrivateKey)
}

// newCert makes a self-signed certificate with a key of kind ("p384",
// "rsa2048", "rsa1024"), subject CN cn (none if empty), valid in [nb, na].
func newCert(t *testing.T, kind, cn string, nb, na time.Time, mods ...func(*x509.Certificate)) *cert {
	t.Helper()
	var key crypto.Signer
	switch kind {
	case "p384":
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	case "rsa2048":
		key = rsaKey(t, 2048)
	case "rsa1024":
		key = rsaKey(t, 1024)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	for _, mod := range mods {
		mod(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &cert{Pair: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: x}, X509: x, FP: hex.EncodeToString(sum[:])}
}

// validCert makes a P-384 certificate valid for a day around the stack's clock.
func (s *stack) validCert(t *testing.T, cn string) *cert {
	t.Helper()
	now := s.clock.Now()
	return newCert(t, "p384", cn, now.Add(-time.Hour), now.Add(24*time.Hour))
}

// client returns a TLS 1.3 client that trusts the stack's server
// certificate and presents c (nothing if nil).
func (s *stack) client(t *testing.T, c *cert) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(s.https.Certificate())
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}
	if c != nil {
		cfg.Certificates = []tls.Certificate{c.Pair}
	}
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// reply is one exchange's outcome.
type reply struct {
	Code   int
	Header http.Header
	Raw    []byte
	Env    api.Response
}

func (r reply) String() string { return string(bytes.TrimSpace(r.Raw)) }

// call sends a request with client c (the admin socket if nil). body is
// JSON-encoded unless it is a string or []byte, sent as it is. header is
// alternating names and values.
func (s *stack) call(t *testing.T, c *http.Client, method, path string, body any, header ...string) reply {
	t.Helper()
	base := "https://" + s.host.addr
	if c == nil {
		c, base = s.admin, "http://unix.socket"
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	rep := reply{Code: resp.StatusCode, Header: resp.Header, Raw: raw}
	if err := json.Unmarshal(raw, &rep.Env); err != nil {
		t.Fatalf("%s %s: not an envelope: %v: %s", method, path, err, raw)
	}
	return rep
}

// metadata decodes the metadata of a successful reply into v.
func (r reply) metadata(t *testing.T, v any) {
	t.Helper()
	if r.Env.Type == api.TypeError {
		t.Fatalf("error reply: %s", r)
	}
	if err := json.Unmarshal(r.Env.Metadata, v); err != nil {
		t.Fatalf("metadata: %v: %s", err, r.Env.Metadata)
	}
}

// wantError checks rep is exactly the error envelope for code and msg.
// A msg ending in "..." matches as a prefix.
func wantError(t *testing.T, rep reply, code int, msg string) {
	t.Helper()
	if rep.Code != code {
		t.Fatalf("HTTP %d, want %d: %s", rep.Code, code, rep)
	}
	got := rep.Env
	if prefix, ok := strings.CutSuffix(msg, "..."); ok && strings.HasPrefix(got.Error, prefix) {
		got.Error = msg
	}
	want := api.Response{Type: "error", ErrorCode: code, Error: msg, Metadata: json.RawMessage("null")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error envelope (-want +got):\n%s", diff)
	}
	if rep.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("error reply without X-Content-Type-Options: nosniff")
	}
}

// wantCode checks the HTTP status of a reply.
func wantCode(t *testing.T, rep reply, code int) {
	t.Helper()
	if rep.Code != code {
		t.Fatalf("HTTP %d, want %d: %s", rep.Code, code, rep)
	}
}

// lastSeq returns the stream's last sequence.
func (s *stack) lastSeq(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	seq, err := s.store.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// since returns the events stored after sequence after.
func (s *stack) since(t *testing.T, after uint64) []events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	recs, err := s.store.Read(ctx, after+1, s.lastSeq(t))
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

// payloads returns the payloads of envs.
func payloads(t *testing.T, envs []events.Envelope) []events.Payload {
	t.Helper()
	out := make([]events.Payload, len(envs))
	for i, e := range envs {
		p, err := e.Payload()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

// unchanged fails if the stream moved past seq.
func (s *stack) unchanged(t *testing.T, seq uint64) {
	t.Helper()
	if got := s.lastSeq(t); got != seq {
		t.Errorf("the stream moved from %d to %d: %d events appended on a failed request", seq, got, got-seq)
	}
}

// add trusts c through the admin socket with req (certificate filled in)
// and returns its fingerprint.
func (s *stack) add(t *testing.T, c *cert, req api.CertificatesPost) string {
	t.Helper()
	req.Certificate = c.B64()
	rep := s.call(t, nil, "POST", "/1.0/certificates", req)
	if rep.Code != http.StatusCreated {
		t.Fatalf("trust %s: %s", c.X509.Subject.CommonName, rep)
	}
	return c.FP
}

// server fetches GET /1.0 with client c (admin socket if nil).
func (s *stack) server(t *testing.T, c *http.Client, header ...string) (api.Server, reply) {
	t.Helper()
	rep := s.call(t, c, "GET", "/1.0", nil, header...)
	wantCode(t, rep, 200)
	var srv api.Server
	rep.metadata(t, &srv)
	return srv, rep
}

// certificate fetches one entry as the admin.
func (s *stack) certificate(t *testing.T, fp string) (api.Certificate, reply) {
	t.Helper()
	rep := s.call(t, nil, "GET", "/1.0/certificates/"+fp, nil)
	var c api.Certificate
	if rep.Code == 200 {
		rep.metadata(t, &c)
	}
	return c, rep
}
