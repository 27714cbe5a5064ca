package daemon_test

// Trust tokens end to end on a real trustlogd: the admin issues over the
// unix socket, clients redeem over TLS 1.3 with their own certificates, and
// the tests read the event stream back to see what was written. The clock
// is injected so that expiry needs no sleeping.
//
// The helpers here carry a "token" prefix: other test files of this
// package are written at the same time, and names must not collide.

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
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// tokenTimeout bounds each start, request and stream read of these tests.
const tokenTimeout = 30 * time.Second

// Event types the tests look for.
const (
	typeIssued   = "trustlog.token.issued.v1"
	typeRedeemed = "trustlog.token.redeemed.v1"
	typeRevoked  = "trustlog.token.revoked.v1"
	typeExpired  = "trustlog.token.expired.v1"
	typeTrusted  = "trustlog.certificate.trusted.v1"
)

// tokenDaemon is a trustlogd started for one test, with its clock, its log
// and an admin client on its unix socket.
type tokenDaemon struct {
	tb    testing.TB
	d     *daemon.Daemon
	dir   string
	clock *testClock
	log   *testLog
	admin *http.Client
}

// startTokenDaemon starts trustlogd on dir with HTTPS on a free loopback
// port. It is closed when the test ends (Close is idempotent, so a test may
// close it earlier).
func startTokenDaemon(tb testing.TB, dir string, clock *testClock) *tokenDaemon {
	tb.Helper()
	logBuf := &testLog{}
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{
		Dir:          dir,
		HTTPSAddress: "127.0.0.1:0",
		Now:          clock.Now,
		Logger:       slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		tb.Fatalf("start trustlogd: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	sock := d.UnixSocket()
	admin := &http.Client{Timeout: tokenTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		},
	}}
	tb.Cleanup(admin.CloseIdleConnections)
	return &tokenDaemon{tb: tb, d: d, dir: dir, clock: clock, log: logBuf, admin: admin}
}

// tokenReply is one HTTP exchange's outcome.
type tokenReply struct {
	Code   int
	Header http.Header
	Env    api.Response
	Body   []byte
}

func (r tokenReply) String() string { return fmt.Sprintf("%d %s", r.Code, bytes.TrimSpace(r.Body)) }

// tokenDo sends a request with a JSON body (none if body is nil; sent as
// it is if body is a []byte) and decodes the envelope.
func tokenDo(tb testing.TB, c *http.Client, method, url string, body any) tokenReply {
	tb.Helper()
	var rd io.Reader
	if raw, ok := body.([]byte); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, url, err)
	}
	rep := tokenReply{Code: resp.StatusCode, Header: resp.Header, Body: raw}
	if err := json.Unmarshal(raw, &rep.Env); err != nil {
		tb.Fatalf("%s %s: not an envelope: %v: %s", method, url, err, raw)
	}
	return rep
}

// call sends a request as the local admin, over the unix socket.
func (td *tokenDaemon) call(method, path string, body any) tokenReply {
	td.tb.Helper()
	return tokenDo(td.tb, td.admin, method, "http://unix.socket"+path, body)
}

// callTLS sends a request over HTTPS with client c.
func (td *tokenDaemon) callTLS(c *http.Client, method, path string, body any) tokenReply {
	td.tb.Helper()
	return tokenDo(td.tb, c, method, "https://"+td.d.HTTPSAddr()+path, body)
}

// tokenCert is a client certificate and its key.
type tokenCert struct {
	Pair tls.Certificate
	X509 *x509.Certificate
	FP   string
}

// newTokenCert makes a self-signed client certificate with a key of kind
// "p384", "p256", "rsa2048" or "rsa1024", valid in [notBefore, notAfter].
func newTokenCert(tb testing.TB, kind string, notBefore, notAfter time.Time) *tokenCert {
	tb.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa1024":
		key, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		tb.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "token-client-" + kind},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &tokenCert{Pair: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: x}, X509: x, FP: hex.EncodeToString(sum[:])}
}

// newCert makes a valid P-384 client certificate for the daemon's clock.
func (td *tokenDaemon) newCert(kind string) *tokenCert {
	td.tb.Helper()
	now := td.clock.Now()
	return newTokenCert(td.tb, kind, now.Add(-time.Hour), now.Add(24*time.Hour))
}

// client returns an HTTPS client presenting cert (none if nil) that speaks
// TLS 1.3 only and accepts only the daemon's own certificate, by
// fingerprint, as a token-holding client would.
func (td *tokenDaemon) client(cert *tokenCert) *http.Client {
	want := td.d.Fingerprint()
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The server certificate is checked by fingerprint below.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			sum := sha256.Sum256(raw[0])
			if got := hex.EncodeToString(sum[:]); got != want {
				return fmt.Errorf("server fingerprint %s, want %s", got, want)
			}
			return nil
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.Pair}
	}
	c := &http.Client{Timeout: tokenTimeout, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	td.tb.Cleanup(c.CloseIdleConnections)
	return c
}

// redeem posts a trust token over a new TLS connection presenting cert
// (none if nil), with extra fields in the body.
func (td *tokenDaemon) redeem(cert *tokenCert, token string, extra map[string]any) tokenReply {
	td.tb.Helper()
	c := td.client(cert)
	defer c.CloseIdleConnections()
	body := map[string]any{"trust_token": token}
	for k, v := range extra {
		body[k] = v
	}
	return td.callTLS(c, "POST", "/1.0/certificates", body)
}

// issuedToken is a token as the admin received it.
type issuedToken struct {
	ID     string
	Secret string
	Token  string
	Op     api.Operation
	Reply  tokenReply
}

// tokenOpMetadata is the operation metadata of a token, as clients read it.
type tokenOpMetadata struct {
	Secret      string               `json:"secret"`
	Fingerprint string               `json:"fingerprint"`
	Addresses   []string             `json:"addresses"`
	Request     api.CertificatesPost `json:"request"`
	ExpiresAt   time.Time            `json:"expiresAt"`
}

// decodeTokenOp reads an operation from a reply's metadata.
func decodeTokenOp(tb testing.TB, raw json.RawMessage) (api.Operation, tokenOpMetadata) {
	tb.Helper()
	var op api.Operation
	if err := json.Unmarshal(raw, &op); err != nil {
		tb.Fatalf("operation: %v: %s", err, raw)
	}
	var wire struct {
		Metadata tokenOpMetadata `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		tb.Fatalf("operation metadata: %v: %s", err, raw)
	}
	return op, wire.Metadata
}

// issue asks for a token over the unix socket and builds the token string
// from the operation, as `incus config trust add` does.
func (td *tokenDaemon) issue(req api.CertificatesPost) issuedToken {
	td.tb.Helper()
	req.Token = true
	rep := td.call("POST", "/1.0/certificates", req)
	if rep.Code != http.StatusAccepted {
		td.tb.Fatalf("issue token: %s", rep)
	}
	op, m := decodeTokenOp(td.tb, rep.Env.Metadata)
	tok := api.CertificateAddToken{
		ClientName: m.Request.Name, Fingerprint: m.Fingerprint, Addresses: m.Addresses,
		Secret: m.Secret, ExpiresAt: m.ExpiresAt,
	}
	return issuedToken{ID: op.ID, Secret: m.Secret, Token: tok.Encode(), Op: op, Reply: rep}
}

// lastSeq returns the stream's last sequence.
func (td *tokenDaemon) lastSeq() uint64 {
	td.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	seq, err := td.d.Store().LastSeq(ctx)
	if err != nil {
		td.tb.Fatal(err)
	}
	return seq
}

// tokenEvent is a stored event with its decoded envelope.
type tokenEvent struct {
	Seq uint64
	Raw []byte
	Env events.Envelope
}

// stream returns every stored event, in order.
func (td *tokenDaemon) stream() []tokenEvent {
	td.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	recs, err := td.d.Store().Read(ctx, 1, td.lastSeq())
	if err != nil {
		td.tb.Fatal(err)
	}
	out := make([]tokenEvent, len(recs))
	for i, r := range recs {
		env, err := events.Decode(r.Raw)
		if err != nil {
			td.tb.Fatalf("event %d: %v", r.Seq, err)
		}
		out[i] = tokenEvent{Seq: r.Seq, Raw: r.Raw, Env: env}
	}
	return out
}

// payload decodes an event's data.
func (e tokenEvent) payload(tb testing.TB) events.Payload {
	tb.Helper()
	p, err := e.Env.Payload()
	if err != nil {
		tb.Fatalf("event %d: %v", e.Seq, err)
	}
	return p
}

// countTokenEvents counts the events of each type.
func countTokenEvents(evs []tokenEvent) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		out[e.Env.Type]++
	}
	return out
}

// wantError checks an error reply: status, envelope and message ("" for
// any message).
func wantError(tb testing.TB, what string, rep tokenReply, code int, msg string) {
	tb.Helper()
	if rep.Code != code || rep.Env.Type != api.TypeError || rep.Env.ErrorCode != code || (msg != "" && rep.Env.Error != msg) {
		tb.Errorf("%s: got %s; want %d %q in the error envelope", what, rep, code, msg)
	}
}

var lowerHex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestTokenIssue checks the token operation an admin gets (spec §1.7) and
// the token string built from it (spec §2.1).
func TestTokenIssue(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	before := td.lastSeq()
	tok := td.issue(api.CertificatesPost{Name: "alice", Type: "client"})
	rep := tok.Reply

	if got, want := rep.Header.Get("Location"), "/1.0/operations/"+tok.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if _, err := uuid.Parse(tok.ID); err != nil {
		t.Errorf("operation id %q is not a UUID", tok.ID)
	}
	env := rep.Env
	if env.Type != "async" || env.Status != "Operation created" || env.StatusCode != 100 || env.Operation != "/1.0/operations/"+tok.ID {
		t.Errorf("envelope = %+v", env)
	}
	op := tok.Op
	if op.Class != "token" || op.Status != "Running" || op.StatusCode != 103 || !op.MayCancel || op.Err != "" {
		t.Errorf("operation = %+v", op)
	}
	if op.Resources == nil || len(op.Resources) != 0 {
		t.Errorf("resources = %#v, want {}", op.Resources)
	}

	// Metadata: exactly these keys, with these values.
	var raw struct {
		Metadata map[string]json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(env.Metadata, &raw); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range raw.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if diff := cmp.Diff([]string{"addresses", "expiresAt", "fingerprint", "request", "secret"}, keys); diff != "" {
		t.Errorf("metadata keys (-want +got):\n%s", diff)
	}
	_, m := decodeTokenOp(t, env.Metadata)
	if !lowerHex64.MatchString(m.Secret) {
		t.Errorf("secret %q is not 64 lowercase hex characters", m.Secret)
	}
	if m.Fingerprint != td.d.Fingerprint() {
		t.Errorf("fingerprint = %s, want the served certificate's %s", m.Fingerprint, td.d.Fingerprint())
	}
	if diff := cmp.Diff([]string{td.d.HTTPSAddr()}, m.Addresses); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	wantReq := api.CertificatesPost{Name: "alice", Type: "client", Projects: []string{}, Token: true}
	if diff := cmp.Diff(wantReq, m.Request); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if !bytes.Contains(raw.Metadata["request"], []byte(`"projects":[]`)) {
		t.Errorf("request.projects is not []: %s", raw.Metadata["request"])
	}
	// The default expiry is one day after issue, by the injected clock.
	if want := td.clock.Now().Add(24 * time.Hour); !m.ExpiresAt.Equal(want) {
		t.Errorf("expiresAt = %v, want %v", m.ExpiresAt, want)
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Trim(string(raw.Metadata["expiresAt"]), `"`)); err != nil {
		t.Errorf("expiresAt %s is not RFC3339Nano: %v", raw.Metadata["expiresAt"], err)
	}

	// The token: standard base64 of compact JSON, keys in the clients' order.
	plain, err := base64.StdEncoding.DecodeString(tok.Token)
	if err != nil {
		t.Fatalf("token is not standard base64: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	var order []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"client_name", "fingerprint", "addresses", "secret", "expires_at"}, order); diff != "" {
		t.Errorf("token keys (-want +got):\n%s", diff)
	}
	got, err := api.DecodeCertificateAddToken(tok.Token)
	if err != nil {
		t.Fatalf("token does not decode: %v", err)
	}
	if got.ClientName != "alice" || got.Secret != m.Secret || got.Fingerprint != td.d.Fingerprint() {
		t.Errorf("decoded token = %+v", got)
	}

	// One TokenIssued event was appended, and the token is listed.
	evs := td.stream()
	if len(evs) != int(before)+1 || evs[len(evs)-1].Env.Type != typeIssued {
		t.Errorf("issuing appended %d events, the last %s", len(evs)-int(before), evs[len(evs)-1].Env.Type)
	}
	list := td.call("GET", "/1.0/operations", nil)
	if list.Code != 200 || !bytes.Contains(list.Env.Metadata, []byte(`"/1.0/operations/`+tok.ID+`"`)) {
		t.Errorf("operations list = %s", list)
	}
	one := td.call("GET", "/1.0/operations/"+tok.ID, nil)
	if _, m2 := decodeTokenOp(t, one.Env.Metadata); one.Code != 200 || m2.Secret != m.Secret {
		t.Errorf("GET operation = %s", one)
	}

	// Restrictions are carried into the operation's request.
	tok = td.issue(api.CertificatesPost{Name: "bob", Restricted: true, Projects: []string{"p1", "p2"}, Description: "d"})
	_, m = decodeTokenOp(t, tok.Reply.Env.Metadata)
	wantReq = api.CertificatesPost{Name: "bob", Type: "client", Restricted: true, Projects: []string{"p1", "p2"}, Description: "d", Token: true}
	if diff := cmp.Diff(wantReq, m.Request); diff != "" {
		t.Errorf("restricted request (-want +got):\n%s", diff)
	}
}

// TestTokenIssueRefused checks the requests that must not produce a token,
// and that none of them appends anything.
func TestTokenIssueRefused(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	// A restricted client, trusted by the admin.
	restricted := td.newCert("p384")
	if rep := td.call("POST", "/1.0/certificates", api.CertificatesPost{
		Name: "r", Restricted: true, Projects: []string{"p"}, Certificate: base64.StdEncoding.EncodeToString(restricted.X509.Raw),
	}); rep.Code != http.StatusCreated {
		t.Fatalf("trust restricted client: %s", rep)
	}
	stranger := td.newCert("p384")
	other := td.newCert("p256")
	certB64 := base64.StdEncoding.EncodeToString(other.X509.Raw)
	for _, tc := range []struct {
		name string
		as   *tokenCert // nil: the admin on the unix socket
		req  api.CertificatesPost
		code int
		msg  string
	}{
		{"fail/empty-name", nil, api.CertificatesPost{Type: "client"}, 400, "Client name must not be empty"},
		{"fail/with-certificate", nil, api.CertificatesPost{Name: "c", Certificate: certB64}, 400, "Can't use certificate if token is requested"},
		{"fail/metrics-type", nil, api.CertificatesPost{Name: "c", Type: "metrics"}, 400, "Tokens can only be issued for client certificates"},
		{"fail/server-type", nil, api.CertificatesPost{Name: "c", Type: "server"}, 400, "Tokens can only be issued for client certificates"},
		{"fail/projects-unrestricted", nil, api.CertificatesPost{Name: "c", Projects: []string{"p"}}, 400,
			"Projects can only be specified for restricted certificates. Set restricted=true or remove projects"},
		{"fail/bad-name", nil, api.CertificatesPost{Name: "a/b"}, 400, ""},
		{"fail/untrusted-caller", stranger, api.CertificatesPost{Name: "c"}, 403, ""},
		{"fail/restricted-caller", restricted, api.CertificatesPost{Name: "c", Restricted: true, Projects: []string{"p"}}, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := td.lastSeq()
			req := tc.req
			req.Token = true
			var rep tokenReply
			if tc.as == nil {
				rep = td.call("POST", "/1.0/certificates", req)
			} else {
				rep = td.callTLS(td.client(tc.as), "POST", "/1.0/certificates", req)
			}
			wantError(t, tc.name, rep, tc.code, tc.msg)
			if after := td.lastSeq(); after != before {
				t.Errorf("stream moved from %d to %d", before, after)
			}
		})
	}
	if list := td.call("GET", "/1.0/operations", nil); string(list.Env.Metadata) != `{"running":[]}` {
		t.Errorf("operations after refusals = %s", list.Env.Metadata)
	}
}

// TestTokenAdvertisedAddresses checks core.https_advertise_addresses, for
// servers reached through NAT.
func TestTokenAdvertisedAddresses(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	for _, bad := range []string{"a.example", "a.example:0", "a.example:99999", "bad host:1"} {
		rep := td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.https_advertise_addresses": bad}})
		wantError(t, "advertise "+bad, rep, 400, "")
	}
	rep := td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.https_advertise_addresses": "a.example:443,192.0.2.1:8443"}})
	if rep.Code != 200 {
		t.Fatalf("set advertised addresses: %s", rep)
	}
	tok := td.issue(api.CertificatesPost{Name: "behind-nat"})
	dec, err := api.DecodeCertificateAddToken(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a.example:443", "192.0.2.1:8443"}, dec.Addresses); diff != "" {
		t.Errorf("token addresses (-want +got):\n%s", diff)
	}
	// Unset, the listen address is advertised again.
	if rep := td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.https_advertise_addresses": ""}}); rep.Code != 200 {
		t.Fatalf("unset advertised addresses: %s", rep)
	}
	dec, _ = api.DecodeCertificateAddToken(td.issue(api.CertificatesPost{Name: "direct"}).Token)
	if diff := cmp.Diff([]string{td.d.HTTPSAddr()}, dec.Addresses); diff != "" {
		t.Errorf("token addresses after unset (-want +got):\n%s", diff)
	}
}

// TestTokenExpiryConfig checks that core.remote_token_expiry is validated
// with the grammar and sets the expiry of later tokens.
func TestTokenExpiryConfig(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	set := func(v string) tokenReply {
		return td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": v}})
	}
	for _, bad := range []string{"bogus", "5", "5s", "-1d", "1x", "0S", "1d 2d"} {
		before := td.lastSeq()
		wantError(t, "expiry "+bad, set(bad), 400, "")
		if after := td.lastSeq(); after != before {
			t.Errorf("refused expiry %q appended events", bad)
		}
	}
	if rep := set("1d 12H"); rep.Code != 200 {
		t.Fatalf("set expiry: %s", rep)
	}
	_, m := decodeTokenOp(t, td.issue(api.CertificatesPost{Name: "a"}).Reply.Env.Metadata)
	if want := td.clock.Now().Add(36 * time.Hour); !m.ExpiresAt.Equal(want) {
		t.Errorf("expiresAt = %v, want %v", m.ExpiresAt, want)
	}
	if rep := set(""); rep.Code != 200 {
		t.Fatalf("unset expiry: %s", rep)
	}
	_, m = decodeTokenOp(t, td.issue(api.CertificatesPost{Name: "b"}).Reply.Env.Metadata)
	if want := td.clock.Now().Add(24 * time.Hour); !m.ExpiresAt.Equal(want) {
		t.Errorf("expiresAt with the default = %v, want %v", m.ExpiresAt, want)
	}
}

// serverView is what a client sees of GET /1.0.
type serverView struct {
	Auth           string `json:"auth"`
	AuthUserName   string `json:"auth_user_name"`
	AuthUserMethod string `json:"auth_user_method"`
}

func (td *tokenDaemon) whoami(c *http.Client) serverView {
	td.tb.Helper()
	rep := td.callTLS(c, "GET", "/1.0", nil)
	var v serverView
	if err := json.Unmarshal(rep.Env.Metadata, &v); rep.Code != 200 || err != nil {
		td.tb.Fatalf("GET /1.0: %s", rep)
	}
	return v
}

// TestTokenRedeem redeems tokens over TLS with ECDSA and RSA client keys:
// the caller becomes trusted on the issuer's terms, and the token is spent.
func TestTokenRedeem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		kind       string
		issue      api.CertificatesPost
		overrides  map[string]any
		restricted bool
		projects   []string
	}{
		{
			name:       "ok/ecdsa-p384-restricted-issuer",
			kind:       "p384",
			issue:      api.CertificatesPost{Name: "alice", Restricted: true, Projects: []string{"p1"}, Description: "laptop"},
			overrides:  map[string]any{"restricted": false, "projects": []string{"x"}, "name": "evil"},
			restricted: true,
			projects:   []string{"p1"},
		},
		{
			name:       "ok/rsa-2048-unrestricted-issuer",
			kind:       "rsa2048",
			issue:      api.CertificatesPost{Name: "bob", Description: "laptop"},
			overrides:  map[string]any{"restricted": true, "projects": []string{"x"}, "name": "evil", "type": "metrics"},
			restricted: false,
			projects:   []string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			td := startTokenDaemon(t, t.TempDir(), newTestClock())
			cert := td.newCert(tc.kind)
			c := td.client(cert)
			if v := td.whoami(c); v.Auth != "untrusted" {
				t.Fatalf("before redemption auth = %q", v.Auth)
			}
			tok := td.issue(tc.issue)
			before := td.lastSeq()

			rep := td.callTLS(c, "POST", "/1.0/certificates", mergeBody(tok.Token, tc.overrides))
			if rep.Code != http.StatusCreated || rep.Env.Type != "sync" || string(rep.Env.Metadata) != "null" {
				t.Fatalf("redeem: %s", rep)
			}
			if got, want := rep.Header.Get("Location"), "/1.0/certificates/"+cert.FP; got != want {
				t.Errorf("Location = %q, want %q", got, want)
			}

			// The same connection is now trusted.
			if v := td.whoami(c); v.Auth != "trusted" || v.AuthUserName != cert.FP || v.AuthUserMethod != "tls" {
				t.Errorf("after redemption GET /1.0 = %+v", v)
			}
			// The entry is the issuer's, whatever the redeemer asked for.
			entry := td.call("GET", "/1.0/certificates/"+cert.FP, nil)
			var got api.Certificate
			if err := json.Unmarshal(entry.Env.Metadata, &got); entry.Code != 200 || err != nil {
				t.Fatalf("GET entry: %s", entry)
			}
			want := api.Certificate{
				Name: tc.issue.Name, Type: "client", Restricted: tc.restricted, Projects: tc.projects,
				Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.X509.Raw})),
				Description: tc.issue.Description, Fingerprint: cert.FP,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}

			// Exactly two events, appended together.
			evs := td.stream()[before:]
			if len(evs) != 2 || evs[0].Env.Type != typeRedeemed || evs[1].Env.Type != typeTrusted || evs[1].Seq != evs[0].Seq+1 {
				t.Fatalf("redemption appended %v", countTokenEvents(evs))
			}
			if r := evs[0].payload(t).(*events.TokenRedeemed); r.ID != tok.ID || r.Fingerprint != cert.FP {
				t.Errorf("TokenRedeemed = %+v", r)
			}
			if !evs[0].Env.Time.Equal(evs[1].Env.Time) || evs[1].Env.PrevHash != events.Hash(evs[0].Raw) {
				t.Error("TokenRedeemed and CertificateTrusted are not one append")
			}

			// The token is gone from the operations and cannot be used again.
			for _, path := range []string{"/1.0/operations", "/1.0/operations?recursion=1"} {
				if list := td.call("GET", path, nil); string(list.Env.Metadata) != `{"running":[]}` {
					t.Errorf("GET %s after redemption = %s", path, list.Env.Metadata)
				}
			}
			if op, _ := decodeTokenOp(t, td.call("GET", "/1.0/operations/"+tok.ID, nil).Env.Metadata); op.Status != "Cancelled" || op.StatusCode != 401 {
				t.Errorf("spent token operation = %s %d", op.Status, op.StatusCode)
			}
			before = td.lastSeq()
			wantError(t, "reuse", td.redeem(td.newCert("p384"), tok.Token, nil), 403, "No matching certificate add operation found")
			if after := td.lastSeq(); after != before {
				t.Errorf("reuse appended events")
			}
		})
	}
}

// mergeBody returns a redemption body with extra fields.
func mergeBody(token string, extra map[string]any) map[string]any {
	body := map[string]any{"trust_token": token}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// TestTokenRevoke covers DELETE /1.0/operations/{id}.
func TestTokenRevoke(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	tok := td.issue(api.CertificatesPost{Name: "revoked"})

	// Only the admin may revoke.
	stranger := td.newCert("p384")
	wantError(t, "untrusted revoke", td.callTLS(td.client(stranger), "DELETE", "/1.0/operations/"+tok.ID, nil), 403, "")

	rep := td.call("DELETE", "/1.0/operations/"+tok.ID, nil)
	if rep.Code != 200 || rep.Env.Type != "sync" || string(rep.Env.Metadata) != "{}" {
		t.Fatalf("revoke: %s", rep)
	}
	if evs := td.stream(); evs[len(evs)-1].Env.Type != typeRevoked {
		t.Errorf("last event = %s, want %s", evs[len(evs)-1].Env.Type, typeRevoked)
	}
	before := td.lastSeq()
	wantError(t, "revoke twice", td.call("DELETE", "/1.0/operations/"+tok.ID, nil), 400, "Only running operations can be cancelled")
	wantError(t, "revoke unknown", td.call("DELETE", "/1.0/operations/"+uuid.NewString(), nil), 404, "Operation not found")
	wantError(t, "get unknown", td.call("GET", "/1.0/operations/"+uuid.NewString(), nil), 404, "Operation not found")
	wantError(t, "redeem revoked", td.redeem(td.newCert("p384"), tok.Token, nil), 403, "No matching certificate add operation found")
	if after := td.lastSeq(); after != before {
		t.Errorf("refused requests appended events (%d → %d)", before, after)
	}
	if list := td.call("GET", "/1.0/operations", nil); string(list.Env.Metadata) != `{"running":[]}` {
		t.Errorf("operations after revoke = %s", list.Env.Metadata)
	}
}

// TestTokenExpiry checks expiry at redemption (no sweeper needed) and the
// sweeper, with the injected clock.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	if rep := td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": "5S"}}); rep.Code != 200 {
		t.Fatalf("set expiry: %s", rep)
	}
	late := td.issue(api.CertificatesPost{Name: "late"})
	swept := []issuedToken{td.issue(api.CertificatesPost{Name: "swept-1"}), td.issue(api.CertificatesPost{Name: "swept-2"})}
	if rep := td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": "1H"}}); rep.Code != 200 {
		t.Fatalf("set expiry: %s", rep)
	}
	live := td.issue(api.CertificatesPost{Name: "live"})

	// Before expiry the sweeper finds nothing.
	if n, err := td.d.Service().Sweep(ctx, td.clock.Now().Add(4*time.Second)); err != nil || n != 0 {
		t.Fatalf("early Sweep = %d, %v", n, err)
	}
	td.clock.Advance(6 * time.Second)

	// Presented late: refused, and burnt with a TokenExpired event.
	before := td.lastSeq()
	wantError(t, "expired token", td.redeem(td.newCert("p384"), late.Token, nil), 403, "Token has expired")
	evs := td.stream()[before:]
	if len(evs) != 1 || evs[0].Env.Type != typeExpired || evs[0].payload(t).(*events.TokenExpired).ID != late.ID {
		t.Fatalf("late redemption appended %v, want one TokenExpired for %s", countTokenEvents(evs), late.ID)
	}
	wantError(t, "expired token again", td.redeem(td.newCert("p384"), late.Token, nil), 403, "No matching certificate add operation found")

	// The sweeper expires each remaining expired token once, and not the live one.
	before = td.lastSeq()
	n, err := td.d.Service().Sweep(ctx, td.clock.Now())
	if err != nil || n != len(swept) {
		t.Fatalf("Sweep = %d, %v; want %d", n, err, len(swept))
	}
	expired := map[string]int{}
	for _, e := range td.stream()[before:] {
		if e.Env.Type != typeExpired {
			t.Errorf("sweep appended a %s", e.Env.Type)
			continue
		}
		expired[e.payload(t).(*events.TokenExpired).ID]++
	}
	if diff := cmp.Diff(map[string]int{swept[0].ID: 1, swept[1].ID: 1}, expired); diff != "" {
		t.Errorf("TokenExpired per token (-want +got):\n%s", diff)
	}
	before = td.lastSeq()
	if n, err := td.d.Service().Sweep(ctx, td.clock.Now()); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v; want 0", n, err)
	}
	if after := td.lastSeq(); after != before {
		t.Errorf("second Sweep appended events")
	}
	for _, s := range swept {
		if op, _ := decodeTokenOp(t, td.call("GET", "/1.0/operations/"+s.ID, nil).Env.Metadata); op.Status != "Cancelled" {
			t.Errorf("swept token %s status = %s", s.ID, op.Status)
		}
		wantError(t, "swept token", td.redeem(td.newCert("p384"), s.Token, nil), 403, "No matching certificate add operation found")
	}
	want := `{"running":["/1.0/operations/` + live.ID + `"]}`
	if list := td.call("GET", "/1.0/operations", nil); string(list.Env.Metadata) != want {
		t.Errorf("operations = %s, want only the live token", list.Env.Metadata)
	}
	if rep := td.redeem(td.newCert("p384"), live.Token, nil); rep.Code != http.StatusCreated {
		t.Errorf("live token: %s", rep)
	}
}

// TestTokenBadTokens sends malformed and unknown tokens: each is a 403 in
// the envelope and appends nothing, and a good token still works after.
func TestTokenBadTokens(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	good := td.issue(api.CertificatesPost{Name: "good"})
	dec, err := api.DecodeCertificateAddToken(good.Token)
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(*api.CertificateAddToken)) string {
		t := dec
		edit(&t)
		return t.Encode()
	}
	plain, _ := base64.StdEncoding.DecodeString(good.Token)
	for _, tc := range []struct {
		name  string
		token string
		msg   string
	}{
		{"fail/garbage", "garbage!", "not authorized"},
		{"fail/truncated", good.Token[:len(good.Token)/2], "not authorized"},
		{"fail/truncated-by-one", good.Token[:len(good.Token)-1], "not authorized"},
		{"fail/wrong-base64-alphabet", base64.RawURLEncoding.EncodeToString(plain) + "-_", "not authorized"},
		{"fail/base64-of-non-json", base64.StdEncoding.EncodeToString([]byte("not json at all")), "not authorized"},
		{"fail/base64-of-truncated-json", base64.StdEncoding.EncodeToString(plain[:len(plain)-2]), "not authorized"},
		// The real secret in a token the decoder rejects must not match.
		{"fail/empty-client-name", with(func(t *api.CertificateAddToken) { t.ClientName = "" }), "not authorized"},
		{"fail/no-addresses", with(func(t *api.CertificateAddToken) { t.Addresses = nil }), "not authorized"},
		{"fail/empty-fingerprint", with(func(t *api.CertificateAddToken) { t.Fingerprint = "" }), "not authorized"},
		{"fail/empty-secret", with(func(t *api.CertificateAddToken) { t.Secret = "" }), "not authorized"},
		{"fail/unknown-secret", with(func(t *api.CertificateAddToken) { t.Secret = strings.Repeat("0", 64) }), "No matching certificate add operation found"},
		{"fail/uppercase-secret", with(func(t *api.CertificateAddToken) { t.Secret = strings.ToUpper(t.Secret) }), "No matching certificate add operation found"},
		{"fail/secret-prefix", with(func(t *api.CertificateAddToken) { t.Secret = t.Secret[:63] }), "No matching certificate add operation found"},
		{"fail/empty-string", "", "not authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := td.lastSeq()
			wantError(t, tc.name, td.redeem(td.newCert("p256"), tc.token, nil), 403, tc.msg)
			if after := td.lastSeq(); after != before {
				t.Errorf("stream moved from %d to %d", before, after)
			}
		})
	}
	// A body that is not JSON, or a token that is not a string, is a 400.
	wantError(t, "token of the wrong type", td.callTLS(td.client(td.newCert("p256")), "POST", "/1.0/certificates", map[string]any{"trust_token": 12}), 400, "")
	if rep := td.redeem(td.newCert("p384"), good.Token, nil); rep.Code != http.StatusCreated {
		t.Errorf("good token after bad ones: %s", rep)
	}
}

// TestTokenRedeemNeedsValidCertificate checks that the caller's certificate
// is checked before the token, so a refused certificate does not spend it.
func TestTokenRedeemNeedsValidCertificate(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	tok := td.issue(api.CertificatesPost{Name: "kept"})
	now := td.clock.Now()
	for _, tc := range []struct {
		name string
		cert *tokenCert
		msg  string
	}{
		{"fail/no-certificate", nil, "No client certificate provided"},
		{"fail/expired", newTokenCert(t, "p384", now.Add(-48*time.Hour), now.Add(-time.Hour)), "The provided certificate is expired"},
		{"fail/not-yet-valid", newTokenCert(t, "p384", now.Add(time.Hour), now.Add(48*time.Hour)), "The provided certificate isn't valid yet"},
		{"fail/weak-rsa", newTokenCert(t, "rsa1024", now.Add(-time.Hour), now.Add(time.Hour)), "RSA key is too weak (minimum of 2048bit)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := td.lastSeq()
			wantError(t, tc.name, td.redeem(tc.cert, tok.Token, nil), 400, tc.msg)
			if after := td.lastSeq(); after != before {
				t.Errorf("stream moved from %d to %d", before, after)
			}
		})
	}
	if rep := td.redeem(td.newCert("p384"), tok.Token, nil); rep.Code != http.StatusCreated {
		t.Errorf("token after refused certificates: %s", rep)
	}
}

// TestTokenRedeemedExactlyOnce is the issue's concurrency proof: 32
// clients, each with its own certificate and an open TLS connection,
// redeem one token at the same moment. Run it with -race.
func TestTokenRedeemedExactlyOnce(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	tok := td.issue(api.CertificatesPost{Name: "race", Restricted: true, Projects: []string{"p"}})
	const n = 32
	certs := make([]*tokenCert, n)
	clients := make([]*http.Client, n)
	byFP := map[string]int{}
	for i := range n {
		certs[i] = td.newCert("p384")
		clients[i] = td.client(certs[i])
		byFP[certs[i].FP] = i
		// Open the TLS connection now, so that the redemptions race on the
		// server rather than in handshakes.
		if v := td.whoami(clients[i]); v.Auth != "untrusted" {
			t.Fatalf("client %d is %s before redeeming", i, v.Auth)
		}
	}
	before := td.lastSeq()
	replies := make([]tokenReply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i] = td.callTLS(clients[i], "POST", "/1.0/certificates", mergeBody(tok.Token, map[string]any{"name": fmt.Sprint("racer-", i), "restricted": false}))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	refused := 0
	for i, rep := range replies {
		switch {
		case rep.Code == http.StatusCreated:
			if winner >= 0 {
				t.Errorf("clients %d and %d both redeemed the token", winner, i)
			}
			winner = i
		case rep.Code == http.StatusForbidden && rep.Env.Error == "No matching certificate add operation found":
			refused++
		default:
			t.Errorf("client %d: %s", i, rep)
		}
	}
	if winner < 0 || refused != n-1 {
		t.Fatalf("%d refused, winner %d; want exactly one 201 and %d × 403", refused, winner, n-1)
	}

	// The stream: one TokenRedeemed and one CertificateTrusted, adjacent,
	// for the winner's certificate.
	evs := td.stream()
	counts := countTokenEvents(evs[before:])
	if diff := cmp.Diff(map[string]int{typeRedeemed: 1, typeTrusted: 1}, counts); diff != "" {
		t.Fatalf("events of the race (-want +got):\n%s", diff)
	}
	trustedForRacers := 0
	for i, e := range evs {
		if e.Env.Type != typeTrusted {
			continue
		}
		ct := e.payload(t).(*events.CertificateTrusted)
		if _, ok := byFP[ct.Fingerprint]; !ok {
			continue
		}
		trustedForRacers++
		if ct.Fingerprint != certs[winner].FP || ct.Name != "race" || !ct.Restricted {
			t.Errorf("CertificateTrusted = %s %q restricted=%v; want the winner's, on the issuer's terms", ct.Fingerprint, ct.Name, ct.Restricted)
		}
		prev := evs[i-1]
		if prev.Env.Type != typeRedeemed || prev.Seq+1 != e.Seq || e.Env.PrevHash != events.Hash(prev.Raw) {
			t.Errorf("CertificateTrusted at %d is not appended right after its TokenRedeemed", e.Seq)
		}
	}
	if trustedForRacers != 1 {
		t.Errorf("%d CertificateTrusted events for the racers, want 1", trustedForRacers)
	}
	// Only the winner is trusted.
	for i, c := range clients {
		want := "untrusted"
		if i == winner {
			want = "trusted"
		}
		if v := td.whoami(c); v.Auth != want {
			t.Errorf("client %d is %s, want %s", i, v.Auth, want)
		}
	}
}

// TestTokenNoSecretInClear runs every token path with the daemon logging at
// debug level, then looks for each secret and each token string in the
// stored events, the store's files, the log and every response a client
// or an error got. Only the admin's own views of a token (its issue reply
// and the operations API) may show the secret.
func TestTokenNoSecretInClear(t *testing.T) {
	t.Parallel()
	td := startTokenDaemon(t, t.TempDir(), newTestClock())
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	var bodies bytes.Buffer // every response body but the admin's views of tokens
	keep := func(rep tokenReply) tokenReply {
		bodies.Write(rep.Body)
		return rep
	}
	var issued []issuedToken
	issue := func(name string) issuedToken {
		tok := td.issue(api.CertificatesPost{Name: name})
		issued = append(issued, tok)
		return tok
	}
	keep(td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": "5S"}}))
	expiring := issue("expiring")
	swept := issue("swept")
	keep(td.call("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": "1H"}}))
	used := issue("used")
	revoked := issue("revoked")
	survivor := issue("survivor")
	_ = issue("never-used")

	// The admin lists them (this view legitimately shows the secrets).
	list := td.call("GET", "/1.0/operations?recursion=1", nil)
	for _, tok := range issued {
		if !bytes.Contains(list.Body, []byte(tok.Secret)) {
			t.Errorf("the admin's listing lacks the secret of %s", tok.ID)
		}
	}

	// Redeem, reuse, revoke, expire, sweep, and bad attempts of every kind.
	keep(td.redeem(td.newCert("p384"), used.Token, nil))
	keep(td.redeem(td.newCert("p384"), used.Token, nil))
	keep(td.call("DELETE", "/1.0/operations/"+revoked.ID, nil))
	keep(td.call("DELETE", "/1.0/operations/"+revoked.ID, nil))
	keep(td.redeem(td.newCert("p384"), revoked.Token, nil))
	keep(td.redeem(nil, survivor.Token, nil))
	now := td.clock.Now()
	keep(td.redeem(newTokenCert(t, "p384", now.Add(-48*time.Hour), now.Add(-time.Hour)), survivor.Token, nil))
	keep(td.redeem(td.newCert("p256"), survivor.Token[:len(survivor.Token)/2], nil))
	keep(td.redeem(td.newCert("p256"), survivor.Token+"!", nil))
	keep(td.redeem(td.newCert("p256"), strings.ToUpper(survivor.Secret), nil))
	keep(td.redeem(td.newCert("p256"), base64.StdEncoding.EncodeToString([]byte(`{"secret":"`+survivor.Secret+`"}`)), nil))
	keep(td.callTLS(td.client(td.newCert("p256")), "POST", "/1.0/certificates", map[string]any{"trust_token": []string{survivor.Token}}))
	keep(td.callTLS(td.client(td.newCert("p256")), "POST", "/1.0/certificates", []byte(`{"trust_token":"`+survivor.Token+`",}`)))
	keep(td.callTLS(td.client(td.newCert("p256")), "POST", "/1.0/certificates", []byte(`{"trust_token":"`+survivor.Token)))
	keep(td.callTLS(td.client(td.newCert("p256")), "POST", "/1.0/certificates", []byte(`{"trust_token":`+survivor.Secret+`}`)))
	keep(td.callTLS(td.client(nil), "GET", "/1.0/operations/"+survivor.ID, nil))
	keep(td.callTLS(td.client(nil), "GET", "/1.0/operations?recursion=1", nil))
	td.clock.Advance(6 * time.Second)
	keep(td.redeem(td.newCert("p384"), expiring.Token, nil))
	if n, err := td.d.Service().Sweep(ctx, td.clock.Now()); err != nil || n != 1 {
		t.Errorf("Sweep = %d, %v; want 1", n, err)
	}
	keep(td.redeem(td.newCert("p384"), swept.Token, nil))
	if rep := keep(td.redeem(td.newCert("p384"), survivor.Token, nil)); rep.Code != http.StatusCreated {
		t.Errorf("survivor token: %s", rep)
	}

	// What to look for: each secret, and each token string.
	var needles []string
	for _, tok := range issued {
		needles = append(needles, tok.Secret, tok.Token)
	}
	evs := td.stream()
	counts := countTokenEvents(evs)
	for _, typ := range []string{typeIssued, typeRedeemed, typeRevoked, typeExpired, typeTrusted} {
		if counts[typ] == 0 {
			t.Errorf("the run wrote no %s event", typ)
		}
	}
	var stream bytes.Buffer
	for _, e := range evs {
		stream.Write(e.Raw)
	}
	files := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(td.dir, "nats"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	logged := td.log.Bytes()
	places := map[string][]byte{"stored events": stream.Bytes(), "log": logged, "response bodies": bodies.Bytes()}
	for path, b := range files {
		places["store file "+path] = b
	}
	for _, needle := range needles {
		for where, b := range places {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("a token secret (%.8s…) appears in clear in the %s", needle, where)
			}
		}
	}
	// The scans see real content: the stream holds each secret's hash and
	// sealed form, the store files hold the stream, the log is not empty.
	for _, tok := range issued {
		sum := sha256.Sum256([]byte(tok.Secret))
		if !bytes.Contains(stream.Bytes(), []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("the stream lacks the secret hash of %s", tok.ID)
		}
	}
	sealed := ""
	for _, e := range evs {
		if e.Env.Type == typeIssued {
			sealed = e.payload(t).(*events.TokenIssued).SealedSecret
		}
	}
	inFiles := false
	for _, b := range files {
		inFiles = inFiles || bytes.Contains(b, []byte(sealed))
	}
	if sealed == "" || !inFiles {
		t.Error("the store files do not hold the stored events: the scan of them proves nothing")
	}
	if !bytes.Contains(logged, []byte("level=DEBUG")) && !bytes.Contains(logged, []byte("level=INFO")) {
		t.Errorf("the log is empty: %q", logged)
	}

	// The sealing key: a 0600 file whose bytes, in any usual spelling, are
	// nowhere in the stream or the log.
	keyPath := filepath.Join(td.dir, "sealing.key")
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("sealing.key mode = %v, want 0600", st.Mode().Perm())
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Fatalf("sealing.key holds %d bytes, want 32", len(key))
	}
	for _, spelling := range [][]byte{key, []byte(hex.EncodeToString(key)), []byte(base64.StdEncoding.EncodeToString(key)), []byte(base64.RawStdEncoding.EncodeToString(key))} {
		for where, b := range map[string][]byte{"stored events": stream.Bytes(), "log": logged, "response bodies": bodies.Bytes()} {
			if bytes.Contains(b, spelling) {
				t.Errorf("the sealing key appears in the %s", where)
			}
		}
	}
}

// TestTokenSurvivesRestart issues tokens, restarts trustlogd on the same
// data directory, and redeems: the stream and the sealing key persist.
func TestTokenSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := newTestClock()
	td := startTokenDaemon(t, dir, clock)
	tok := td.issue(api.CertificatesPost{Name: "persistent", Restricted: true, Projects: []string{"p"}})
	revoked := td.issue(api.CertificatesPost{Name: "revoked"})
	if rep := td.call("DELETE", "/1.0/operations/"+revoked.ID, nil); rep.Code != 200 {
		t.Fatalf("revoke: %s", rep)
	}
	key, err := os.ReadFile(filepath.Join(dir, "sealing.key"))
	if err != nil {
		t.Fatal(err)
	}
	fp := td.d.Fingerprint()
	if err := td.d.Close(); err != nil {
		t.Fatal(err)
	}

	td = startTokenDaemon(t, dir, clock)
	if td.d.Fingerprint() != fp {
		t.Errorf("server fingerprint changed across the restart")
	}
	if again, err := os.ReadFile(filepath.Join(dir, "sealing.key")); err != nil || !bytes.Equal(again, key) {
		t.Fatalf("sealing key changed across the restart: %v", err)
	}
	// The operation shows the same secret: it was unsealed with the kept key.
	one := td.call("GET", "/1.0/operations/"+tok.ID, nil)
	if _, m := decodeTokenOp(t, one.Env.Metadata); one.Code != 200 || m.Secret != tok.Secret {
		t.Errorf("operation after restart: %s", one)
	}
	want := `{"running":["/1.0/operations/` + tok.ID + `"]}`
	if list := td.call("GET", "/1.0/operations", nil); string(list.Env.Metadata) != want {
		t.Errorf("operations after restart = %s, want %s", list.Env.Metadata, want)
	}
	wantError(t, "revoked token after restart", td.redeem(td.newCert("p384"), revoked.Token, nil), 403, "No matching certificate add operation found")
	cert := td.newCert("p384")
	if rep := td.redeem(cert, tok.Token, nil); rep.Code != http.StatusCreated {
		t.Fatalf("redeem after restart: %s", rep)
	}
	if v := td.whoami(td.client(cert)); v.Auth != "trusted" {
		t.Errorf("redeemer is %s after restart", v.Auth)
	}
}
