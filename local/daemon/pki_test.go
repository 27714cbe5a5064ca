package daemon_test

// PKI mode end to end on a real trustlogd: the CA from server.ca or the
// API, the CRL from <dir>/ca.crl or the API, made both by Go and by the
// real openssl command, checked over TLS 1.3 with real client
// certificates. The clock is injected; the only waiting is the bounded
// poll for the ca.crl watcher, which runs on its own two-second ticker.
//
// The helpers here carry a "pki" prefix, because other test files of this
// package are written at the same time. authz_test.go, metrics_test.go and
// pki_bench_test.go use them too.

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
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/local/daemon"
	"github.com/trustlog/trustlog/local/internal/toolbin"
	"github.com/trustlog/trustlog/projections"
)

// pkiTimeout bounds each start, request, command and stream read.
const pkiTimeout = 30 * time.Second

// pkiPublishWait bounds the wait for the ca.crl watcher (it polls every
// daemon.CRLPollInterval).
const pkiPublishWait = 10 * time.Second

// msgUntrusted is LXD's refusal of a certificate PKI mode cannot trust.
const msgUntrusted = "The certificate is not trusted by the CA or has been revoked"

// Event types of PKI mode.
const (
	typeCAChanged      = "trustlog.pki.ca.changed.v1"
	typeCRLUpdated     = "trustlog.pki.crl.updated.v1"
	typeCRLRevocations = "trustlog.pki.crl.revocations.v1"
)

// newPKIClock starts a minute ahead of the real clock, so that
// certificates openssl makes during the test (valid from the real now) are
// already valid on it.
func newPKIClock() *testClock {
	return &testClock{now: time.Now().Add(time.Minute).UTC().Truncate(time.Second)}
}

// pkiServer is a trustlogd started for one test, with its clock, its log
// and an admin client on its unix socket.
type pkiServer struct {
	d     *daemon.Daemon
	dir   string
	clock *testClock
	log   *testLog
	admin *http.Client
}

// startPKI starts trustlogd on dir with HTTPS on a free loopback port; it
// is closed when the test ends.
func startPKI(tb testing.TB, dir string, clock *testClock) *pkiServer {
	tb.Helper()
	s, err := tryStartPKI(tb, dir, clock)
	if err != nil {
		tb.Fatalf("start trustlogd: %v", err)
	}
	return s
}

func tryStartPKI(tb testing.TB, dir string, clock *testClock) (*pkiServer, error) {
	tb.Helper()
	logBuf := &testLog{}
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{
		Dir:          dir,
		HTTPSAddress: "127.0.0.1:0",
		Now:          clock.Now,
		Logger:       slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { d.Close() })
	sock := d.UnixSocket()
	admin := &http.Client{Timeout: pkiTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		},
	}}
	tb.Cleanup(admin.CloseIdleConnections)
	return &pkiServer{d: d, dir: dir, clock: clock, log: logBuf, admin: admin}, nil
}

// pkiReply is one HTTP exchange's outcome.
type pkiReply struct {
	Code   int
	Header http.Header
	Env    api.Response
	Body   []byte
}

func (r pkiReply) String() string { return fmt.Sprintf("%d %s", r.Code, bytes.TrimSpace(r.Body)) }

// pkiDo sends a request with a JSON body (none if body is nil) and reads
// the reply; a JSON body is decoded as the envelope.
func pkiDo(tb testing.TB, c *http.Client, method, url string, body any, header ...string) pkiReply {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
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
	rep := pkiReply{Code: resp.StatusCode, Header: resp.Header, Body: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &rep.Env); err != nil {
			tb.Fatalf("%s %s: not an envelope: %v: %s", method, url, err, raw)
		}
	}
	return rep
}

// call sends a request as the local admin, over the unix socket.
func (s *pkiServer) call(tb testing.TB, method, path string, body any) pkiReply {
	tb.Helper()
	return pkiDo(tb, s.admin, method, "http://unix.socket"+path, body)
}

// mustCall is call that fails the test unless the status is want.
func (s *pkiServer) mustCall(tb testing.TB, want int, method, path string, body any) pkiReply {
	tb.Helper()
	rep := s.call(tb, method, path, body)
	if rep.Code != want {
		tb.Fatalf("%s %s as admin: %s, want %d", method, path, rep, want)
	}
	return rep
}

// over sends a request over HTTPS with client c.
func (s *pkiServer) over(tb testing.TB, c *http.Client, method, path string, body any, header ...string) pkiReply {
	tb.Helper()
	return pkiDo(tb, c, method, "https://"+s.d.HTTPSAddr()+path, body, header...)
}

// client returns an HTTPS client presenting cert (none if nil), TLS 1.3
// only, that accepts only the daemon's own certificate, by fingerprint.
func (s *pkiServer) client(tb testing.TB, cert *pkiCert) *http.Client {
	want := s.d.Fingerprint()
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The server certificate is checked by fingerprint below.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			if got := pkiFingerprint(raw[0]); got != want {
				return fmt.Errorf("server fingerprint %s, want %s", got, want)
			}
			return nil
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.Pair}
	}
	c := &http.Client{Timeout: pkiTimeout, Transport: &http.Transport{TLSClientConfig: cfg}}
	tb.Cleanup(c.CloseIdleConnections)
	return c
}

// pkiView is what GET /1.0 says about the caller.
type pkiView struct {
	Auth   string
	Method string
	Name   string
	Config map[string]string
}

// view reads GET /1.0 with client c.
func (s *pkiServer) view(tb testing.TB, c *http.Client) pkiView {
	tb.Helper()
	rep := s.over(tb, c, "GET", "/1.0", nil)
	if rep.Code != http.StatusOK {
		tb.Fatalf("GET /1.0: %s", rep)
	}
	var srv api.Server
	if err := json.Unmarshal(rep.Env.Metadata, &srv); err != nil {
		tb.Fatal(err)
	}
	return pkiView{Auth: srv.Auth, Method: srv.AuthUserMethod, Name: srv.AuthUserName, Config: srv.Config}
}

// trust adds cert to the trust store as the admin.
func (s *pkiServer) trust(tb testing.TB, cert *pkiCert, req api.CertificatesPost) {
	tb.Helper()
	req.Certificate = base64.StdEncoding.EncodeToString(cert.X509.Raw)
	s.mustCall(tb, http.StatusCreated, "POST", "/1.0/certificates", req)
}

// setCA puts caPEM in force through the API.
func (s *pkiServer) setCA(tb testing.TB, caPEM string) {
	tb.Helper()
	s.mustCall(tb, http.StatusOK, "PUT", "/1.0/trustlog/pki/ca", pki.CAPut{Certificate: caPEM})
}

// setCRL publishes a DER CRL through the API, as base64.
func (s *pkiServer) setCRL(tb testing.TB, der []byte) {
	tb.Helper()
	s.mustCall(tb, http.StatusOK, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(der)})
}

// setConfig patches server configuration keys as the admin.
func (s *pkiServer) setConfig(tb testing.TB, kv ...string) {
	tb.Helper()
	cfg := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	s.mustCall(tb, http.StatusOK, "PATCH", "/1.0", api.ServerPut{Config: cfg})
}

// crl reads the CRL in force; ok is false when there is none (404).
func (s *pkiServer) crl(tb testing.TB) (pki.CRLInfo, bool) {
	tb.Helper()
	rep := s.call(tb, "GET", "/1.0/trustlog/pki/crl", nil)
	if rep.Code == http.StatusNotFound {
		return pki.CRLInfo{}, false
	}
	if rep.Code != http.StatusOK {
		tb.Fatalf("GET /1.0/trustlog/pki/crl: %s", rep)
	}
	var info pki.CRLInfo
	if err := json.Unmarshal(rep.Env.Metadata, &info); err != nil {
		tb.Fatal(err)
	}
	return info, true
}

// writeCRLFile writes raw to <dir>/ca.crl and waits, polling GET
// /1.0/trustlog/pki/crl within pkiPublishWait, until the list whose DER
// bytes are der is in force.
func (s *pkiServer) writeCRLFile(tb testing.TB, raw, der []byte) pki.CRLInfo {
	tb.Helper()
	path := filepath.Join(s.dir, "ca.crl")
	if err := os.WriteFile(path+".tmp", raw, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		tb.Fatal(err)
	}
	want := pkiSHA256(der)
	deadline := time.Now().Add(pkiPublishWait)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if info, ok := s.crl(tb); ok && info.SHA256 == want {
			return info
		}
		if time.Now().After(deadline) {
			tb.Fatalf("ca.crl not published within %v; log:\n%s", pkiPublishWait, s.log)
		}
		<-poll.C
	}
}

// lastSeq returns the stream's last sequence.
func (s *pkiServer) lastSeq(tb testing.TB) uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	seq, err := s.d.Store().LastSeq(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return seq
}

// records returns the stored events from sequence from on.
func (s *pkiServer) records(tb testing.TB, from uint64) []events.Record {
	tb.Helper()
	last := s.lastSeq(tb)
	if from > last {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	recs, err := s.d.Store().Read(ctx, from, last)
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

// types returns the event types stored from sequence from on.
func (s *pkiServer) types(tb testing.TB, from uint64) []string {
	tb.Helper()
	var out []string
	for _, r := range s.records(tb, from) {
		env, err := events.Decode(r.Raw)
		if err != nil {
			tb.Fatalf("event %d: %v", r.Seq, err)
		}
		out = append(out, env.Type)
	}
	return out
}

// issueToken asks for a trust token over the unix socket and builds the
// token string from the operation, as `incus config trust add` does.
func (s *pkiServer) issueToken(tb testing.TB, name string) (id, token string) {
	tb.Helper()
	rep := s.mustCall(tb, http.StatusAccepted, "POST", "/1.0/certificates", api.CertificatesPost{Name: name, Token: true})
	var op struct {
		ID       string `json:"id"`
		Metadata struct {
			Secret      string    `json:"secret"`
			Fingerprint string    `json:"fingerprint"`
			Addresses   []string  `json:"addresses"`
			ExpiresAt   time.Time `json:"expiresAt"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(rep.Env.Metadata, &op); err != nil {
		tb.Fatal(err)
	}
	m := op.Metadata
	return op.ID, api.CertificateAddToken{
		ClientName: name, Fingerprint: m.Fingerprint, Addresses: m.Addresses, Secret: m.Secret, ExpiresAt: m.ExpiresAt,
	}.Encode()
}

// wantErr checks an error reply: status, envelope and message ("" for any).
func wantErr(tb testing.TB, what string, rep pkiReply, code int, msg string) {
	tb.Helper()
	if rep.Code != code || rep.Env.Type != api.TypeError || rep.Env.ErrorCode != code || (msg != "" && rep.Env.Error != msg) {
		tb.Errorf("%s: got %s; want %d %q in the error envelope", what, rep, code, msg)
	}
}

// pkiCert is a client certificate with its key.
type pkiCert struct {
	Pair tls.Certificate
	X509 *x509.Certificate
	FP   string
	PEM  string
}

func newPKICert(tb testing.TB, der []byte, key any) *pkiCert {
	tb.Helper()
	x, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &pkiCert{
		Pair: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: x},
		X509: x,
		FP:   pkiFingerprint(der),
		PEM:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}
}

// loadPKICert reads a PEM certificate and key written by openssl.
func loadPKICert(tb testing.TB, crt, key string) *pkiCert {
	tb.Helper()
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		tb.Fatal(err)
	}
	return newPKICert(tb, pair.Certificate[0], pair.PrivateKey)
}

func pkiFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func pkiSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func pkiKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func pkiSerial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// selfSigned makes a self-signed P-384 client certificate valid in [nb, na].
func selfSigned(tb testing.TB, cn string, nb, na time.Time) *pkiCert {
	tb.Helper()
	k := pkiKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: pkiSerial(tb), Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	return newPKICert(tb, der, k)
}

// pkiCA is a certificate authority made in Go.
type pkiCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	PEM  string
}

func newPKICA(tb testing.TB, cn string, now time.Time) *pkiCA {
	tb.Helper()
	k := pkiKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: pkiSerial(tb), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &pkiCA{key: k, cert: c, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue signs a P-384 client certificate valid in [nb, na].
func (ca *pkiCA) issue(tb testing.TB, cn string, nb, na time.Time) *pkiCert {
	tb.Helper()
	k := pkiKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: pkiSerial(tb), Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return newPKICert(tb, der, k)
}

// client signs a client certificate valid for a year around now.
func (ca *pkiCA) client(tb testing.TB, cn string, now time.Time) *pkiCert {
	tb.Helper()
	return ca.issue(tb, cn, now.Add(-time.Hour), now.Add(365*24*time.Hour))
}

// crl signs a CRL with number valid in [this, next] revoking
// serials.
func (ca *pkiCA) crl(tb testing.TB, number int64, this, next time.Time, serials ...*big.Int) []byte {
	tb.Helper()
	entries := make([]x509.RevocationListEntry, len(serials))
	for i, s := range serials {
		entries[i] = x509.RevocationListEntry{SerialNumber: s, RevocationTime: this}
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next, RevokedCertificateEntries: entries}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// pkiOpenSSL is a certificate authority run by the openssl command in its
// own directory, with a minimal ca.cnf for `openssl ca -revoke/-gencrl`.
type pkiOpenSSL struct {
	dir string
}

const pkiCAConf = `[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = index.txt
new_certs_dir = .
certificate = ca.crt
private_key = ca.key
default_md = sha384
default_crl_days = 7
crlnumber = crlnumber
policy = policy_any
[ policy_any ]
commonName = supplied
`

func newOpenSSLCA(tb testing.TB, cn string) *pkiOpenSSL {
	tb.Helper()
	o := &pkiOpenSSL{dir: tb.TempDir()}
	o.write(tb, "ca.cnf", pkiCAConf)
	o.write(tb, "index.txt", "")
	o.write(tb, "crlnumber", "01\n")
	o.run(tb, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes", "-days", "365",
		"-subj", "/CN="+cn, "-addext", "basicConstraints=critical,CA:true",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", "ca.key", "-out", "ca.crt")
	return o
}

func (o *pkiOpenSSL) path(name string) string { return filepath.Join(o.dir, name) }

func (o *pkiOpenSSL) write(tb testing.TB, name, content string) {
	tb.Helper()
	if err := os.WriteFile(o.path(name), []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func (o *pkiOpenSSL) read(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(o.path(name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// run runs openssl in the CA's directory, bounded by pkiTimeout.
func (o *pkiOpenSSL) run(tb testing.TB, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Dir = o.dir
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// opensslWithGoCA lets openssl sign for ca, a Go-made CA, with a config
// that gives CRLs no CRL number (but an extension, so that the list is v2,
// the only version Go parses).
func opensslWithGoCA(tb testing.TB, ca *pkiCA) *pkiOpenSSL {
	tb.Helper()
	o := &pkiOpenSSL{dir: tb.TempDir()}
	conf := strings.Replace(pkiCAConf, "crlnumber = crlnumber\n", "crl_extensions = crl_ext\n", 1)
	o.write(tb, "ca.cnf", conf+"[ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n")
	o.write(tb, "index.txt", "")
	o.write(tb, "ca.crt", ca.PEM)
	key, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	o.write(tb, "ca.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})))
	return o
}

// caPEM returns the CA certificate.
func (o *pkiOpenSSL) caPEM(tb testing.TB) string { return string(o.read(tb, "ca.crt")) }

// issue makes a P-384 key and a certificate for cn signed by the CA with
// `openssl x509 -req -CA`; ext, if set, is an extension section
// ("subjectAltName = ...") added to it.
func (o *pkiOpenSSL) issue(tb testing.TB, cn, ext string) *pkiCert {
	tb.Helper()
	o.run(tb, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes", "-subj", "/CN="+cn,
		"-keyout", cn+".key", "-out", cn+".csr")
	args := []string{"x509", "-req", "-in", cn + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "30", "-sha384", "-out", cn + ".crt"}
	if ext != "" {
		o.write(tb, cn+".ext", "[ ext ]\n"+ext+"\n")
		args = append(args, "-extfile", cn+".ext", "-extensions", "ext")
	}
	o.run(tb, args...)
	return loadPKICert(tb, o.path(cn+".crt"), o.path(cn+".key"))
}

// revoke marks cn's certificate revoked in the CA database.
func (o *pkiOpenSSL) revoke(tb testing.TB, cn string) {
	tb.Helper()
	o.run(tb, "ca", "-config", "ca.cnf", "-batch", "-revoke", cn+".crt")
}

// gencrl writes a new CRL (the next CRL number) and returns it as PEM and
// DER.
func (o *pkiOpenSSL) gencrl(tb testing.TB) (pemBytes, der []byte) {
	tb.Helper()
	o.run(tb, "ca", "-config", "ca.cnf", "-batch", "-gencrl", "-out", "crl.pem")
	o.run(tb, "crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der")
	return o.read(tb, "crl.pem"), o.read(tb, "crl.der")
}

// TestPKIServerCAFile turns PKI mode on the LXD way: server.ca in the data
// directory at start, made by openssl. Entries trusted before stop working
// unless the CA signed them (they stay listed); server-type entries are
// exempt.
func TestPKIServerCAFile(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	dir := t.TempDir()
	ossl := newOpenSSLCA(t, "trustlog-test-ca")
	now := clock.Now()

	// Before PKI mode: a self-signed client, a self-signed server-type
	// entry (a cluster member) and an openssl-signed client are trusted.
	s := startPKI(t, dir, clock)
	legacy := selfSigned(t, "legacy", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	member := selfSigned(t, "member", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	signed := ossl.issue(t, "alice", "")
	s.trust(t, legacy, api.CertificatesPost{Name: "legacy"})
	s.trust(t, member, api.CertificatesPost{Name: "member", Type: "server"})
	s.trust(t, signed, api.CertificatesPost{Name: "alice"})
	for _, c := range []*pkiCert{legacy, member, signed} {
		if v := s.view(t, s.client(t, c)); v.Auth != "trusted" {
			t.Fatalf("%s before PKI mode: %+v", c.X509.Subject.CommonName, v)
		}
	}
	s.d.Close()

	if err := os.WriteFile(filepath.Join(dir, "server.ca"), []byte(ossl.caPEM(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	s = startPKI(t, dir, clock)
	if !strings.Contains(s.log.String(), "PKI mode") {
		t.Errorf("no PKI mode line in the log:\n%s", s.log)
	}
	var ca pki.CAInfo
	if err := json.Unmarshal(s.mustCall(t, 200, "GET", "/1.0/trustlog/pki/ca", nil).Env.Metadata, &ca); err != nil {
		t.Fatal(err)
	}
	caBlock, _ := pem.Decode([]byte(ossl.caPEM(t)))
	if ca.Fingerprint != pkiFingerprint(caBlock.Bytes) {
		t.Errorf("CA in force %s, want server.ca %s", ca.Fingerprint, pkiFingerprint(caBlock.Bytes))
	}

	tests := []struct {
		name      string
		cert      *pkiCert
		auth      string
		method    string
		certsCode int
	}{
		{"fail/self-signed entry", legacy, "untrusted", "", 403},
		{"ok/openssl-signed entry", signed, "trusted", "tls", 200},
		{"ok/server entry exempt", member, "trusted", "cluster", 200},
		{"fail/openssl-signed without entry", ossl.issue(t, "bob", ""), "untrusted", "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.client(t, tt.cert)
			if v := s.view(t, c); v.Auth != tt.auth || v.Method != tt.method {
				t.Errorf("GET /1.0: auth %q method %q, want %q %q", v.Auth, v.Method, tt.auth, tt.method)
			}
			if rep := s.over(t, c, "GET", "/1.0/certificates", nil); rep.Code != tt.certsCode {
				t.Errorf("GET /1.0/certificates: %s, want %d", rep, tt.certsCode)
			}
		})
	}
	// The non-CA entry is still listed.
	var list []string
	if err := json.Unmarshal(s.mustCall(t, 200, "GET", "/1.0/certificates", nil).Env.Metadata, &list); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(list, "/1.0/certificates/"+legacy.FP) || len(list) != 3 {
		t.Errorf("trust store after PKI mode: %v", list)
	}
	// A restart with the same server.ca appends nothing.
	before := s.lastSeq(t)
	s.d.Close()
	s = startPKI(t, dir, clock)
	if after := s.lastSeq(t); after != before {
		t.Errorf("restart with the same server.ca moved the stream from %d to %d: %v", before, after, s.types(t, before+1))
	}
}

// TestPKIServerCAFileInvalid: a server.ca that holds no certificate, or
// a certificate that is not a CA, stops the daemon from starting and
// appends nothing.
func TestPKIServerCAFileInvalid(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	leaf := selfSigned(t, "not-a-ca", clock.Now().Add(-time.Hour), clock.Now().Add(time.Hour))
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not really")})
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"fail/empty file", "", "holds no certificate"},
		{"fail/no PEM", "hello\n", "no PEM certificate"},
		{"fail/key only", string(key), "no PEM certificate"},
		{"fail/not a CA", leaf.PEM, "not a certificate authority"},
		{"fail/truncated", leaf.PEM[:len(leaf.PEM)/2], "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := startPKI(t, dir, clock)
			before := s.lastSeq(t)
			s.d.Close()
			if err := os.WriteFile(filepath.Join(dir, "server.ca"), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := tryStartPKI(t, dir, clock)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("start with a bad server.ca: %v, want an error with %q", err, tt.want)
			}
			if err := os.Remove(filepath.Join(dir, "server.ca")); err != nil {
				t.Fatal(err)
			}
			s = startPKI(t, dir, clock)
			if after := s.lastSeq(t); after != before {
				t.Errorf("the refused server.ca moved the stream from %d to %d: %v", before, after, s.types(t, before+1))
			}
		})
	}
}

// TestPKIModeFromAPI turns PKI mode on with PUT /1.0/trustlog/pki/ca and
// walks through core.trust_ca_certificates: a CA-signed client with no
// entry is an admin (method pki) while the key is on; a restricted entry
// stays restricted; the pki client can turn the key off itself and is
// refused on its next request. An empty CA turns PKI mode off again.
func TestPKIModeFromAPI(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	now := clock.Now()
	legacy := selfSigned(t, "legacy", now.Add(-time.Hour), now.Add(24*time.Hour))
	s.trust(t, legacy, api.CertificatesPost{Name: "legacy"})
	s.setConfig(t, "user.secret", "visible-to-admins")

	ca := newPKICA(t, "api-ca", now)
	before := s.lastSeq(t)
	s.setCA(t, ca.PEM)
	if got := s.types(t, before+1); !cmp.Equal(got, []string{typeCAChanged}) {
		t.Errorf("PUT ca appended %v", got)
	}
	// Setting the same CA again is a no-op.
	before = s.lastSeq(t)
	s.setCA(t, ca.PEM)
	if after := s.lastSeq(t); after != before {
		t.Errorf("the same CA again appended %v", s.types(t, before+1))
	}

	admin := ca.client(t, "admin", now)
	restricted := ca.client(t, "restricted", now)
	loner := ca.client(t, "loner", now)
	s.trust(t, admin, api.CertificatesPost{Name: "admin"})
	s.trust(t, restricted, api.CertificatesPost{Name: "restricted", Restricted: true, Projects: []string{"p1"}})
	legacyC, adminC, restrictedC, lonerC := s.client(t, legacy), s.client(t, admin), s.client(t, restricted), s.client(t, loner)

	check := func(t *testing.T, who string, c *http.Client, auth, method string, seesConfig bool, certsCode, putCode int) {
		t.Helper()
		v := s.view(t, c)
		if v.Auth != auth || v.Method != method {
			t.Errorf("%s GET /1.0: auth %q method %q, want %q %q", who, v.Auth, v.Method, auth, method)
		}
		if _, ok := v.Config["user.secret"]; ok != seesConfig {
			t.Errorf("%s sees the server config: %v, want %v", who, ok, seesConfig)
		}
		if rep := s.over(t, c, "GET", "/1.0/certificates", nil); rep.Code != certsCode {
			t.Errorf("%s GET /1.0/certificates: %s, want %d", who, rep, certsCode)
		}
		if rep := s.over(t, c, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"user.by": who}}); rep.Code != putCode {
			t.Errorf("%s PATCH /1.0: %s, want %d", who, rep, putCode)
		}
	}
	t.Run("ok/trust_ca off", func(t *testing.T) {
		check(t, "legacy", legacyC, "untrusted", "", false, 403, 403)
		check(t, "admin", adminC, "trusted", "tls", true, 200, 200)
		check(t, "restricted", restrictedC, "trusted", "tls", false, 200, 403)
		check(t, "loner", lonerC, "untrusted", "", false, 403, 403)
	})
	t.Run("ok/trust_ca on", func(t *testing.T) {
		s.setConfig(t, "core.trust_ca_certificates", "true")
		check(t, "legacy", legacyC, "untrusted", "", false, 403, 403)
		check(t, "admin", adminC, "trusted", "tls", true, 200, 200)
		check(t, "restricted", restrictedC, "trusted", "tls", false, 200, 403)
		check(t, "loner", lonerC, "trusted", "pki", true, 200, 200)
		if v := s.view(t, lonerC); v.Name != loner.FP {
			t.Errorf("pki client's auth_user_name %q, want its fingerprint", v.Name)
		}
		// No entry was created for it.
		if rep := s.call(t, "GET", "/1.0/certificates/"+loner.FP, nil); rep.Code != 404 {
			t.Errorf("the pki client has an entry: %s", rep)
		}
		// A pki client is an admin: it may add a CA-signed certificate.
		extra := ca.client(t, "extra", now)
		body := api.CertificatesPost{Name: "extra", Certificate: base64.StdEncoding.EncodeToString(extra.X509.Raw)}
		if rep := s.over(t, lonerC, "POST", "/1.0/certificates", body); rep.Code != 201 {
			t.Errorf("pki client adds a certificate: %s", rep)
		}
	})
	t.Run("ok/pki client turns the key off itself", func(t *testing.T) {
		var reused []bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		do := func(method, path string, body any) int {
			var rd io.Reader
			if body != nil {
				raw, _ := json.Marshal(body)
				rd = bytes.NewReader(raw)
			}
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method,
				"https://"+s.d.HTTPSAddr()+path, rd)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := lonerC.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			return resp.StatusCode
		}
		if code := do("PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.trust_ca_certificates": ""}}); code != 200 {
			t.Fatalf("pki client unsets core.trust_ca_certificates: %d", code)
		}
		if code := do("GET", "/1.0/certificates", nil); code != 403 {
			t.Errorf("pki client after unsetting the key: %d, want 403", code)
		}
		if len(reused) != 2 || !reused[1] {
			t.Errorf("the second request did not reuse the connection: %v", reused)
		}
		check(t, "loner", lonerC, "untrusted", "", false, 403, 403)
		check(t, "admin", adminC, "trusted", "tls", true, 200, 200)
	})
	t.Run("ok/PKI mode off", func(t *testing.T) {
		before := s.lastSeq(t)
		s.setCA(t, "")
		if got := s.types(t, before+1); !cmp.Equal(got, []string{typeCAChanged}) {
			t.Errorf("PUT empty CA appended %v", got)
		}
		var info pki.CAInfo
		if err := json.Unmarshal(s.mustCall(t, 200, "GET", "/1.0/trustlog/pki/ca", nil).Env.Metadata, &info); err != nil || info != (pki.CAInfo{}) {
			t.Errorf("GET ca with PKI mode off: %+v %v", info, err)
		}
		check(t, "legacy", legacyC, "trusted", "tls", true, 200, 200)
		check(t, "admin", adminC, "trusted", "tls", true, 200, 200)
		check(t, "loner", lonerC, "untrusted", "", false, 403, 403)
	})
}

// pkiRevocationChecks asserts what revocation means for revoked, whose
// entry was trusted: untrusted everywhere, cannot be added again (403 with
// LXD's message), cannot redeem a valid token (403), and that token then
// still works for good, another CA-signed certificate.
func pkiRevocationChecks(t *testing.T, s *pkiServer, revoked, good *pkiCert) {
	t.Helper()
	rc := s.client(t, revoked)
	if v := s.view(t, rc); v.Auth != "untrusted" {
		t.Errorf("revoked client GET /1.0: %+v", v)
	}
	for _, path := range []string{"/1.0/certificates", "/1.0/certificates/" + revoked.FP, "/1.0/operations", "/1.0/trustlog/pki/crl", "/1.0/metrics"} {
		wantErr(t, "revoked client GET "+path, s.over(t, rc, "GET", path, nil), 403, "not authorized")
	}
	// Still listed, as LXD keeps it.
	s.mustCall(t, 200, "GET", "/1.0/certificates/"+revoked.FP, nil)
	s.mustCall(t, 200, "DELETE", "/1.0/certificates/"+revoked.FP, nil)

	before := s.lastSeq(t)
	add := api.CertificatesPost{Name: "again", Certificate: base64.StdEncoding.EncodeToString(revoked.X509.Raw)}
	wantErr(t, "re-adding the revoked certificate", s.call(t, "POST", "/1.0/certificates", add), 403, msgUntrusted)
	add.Certificate = revoked.PEM
	wantErr(t, "re-adding the revoked certificate as PEM", s.call(t, "POST", "/1.0/certificates", add), 403, msgUntrusted)

	opID, token := s.issueToken(t, "for-good")
	before = s.lastSeq(t)
	wantErr(t, "revoked client redeems a valid token", s.over(t, rc, "POST", "/1.0/certificates", map[string]any{"trust_token": token}), 403, msgUntrusted)
	if after := s.lastSeq(t); after != before {
		t.Errorf("the refused redemption appended %v", s.types(t, before+1))
	}
	var op api.Operation
	if err := json.Unmarshal(s.mustCall(t, 200, "GET", "/1.0/operations/"+opID, nil).Env.Metadata, &op); err != nil || op.StatusCode != 103 {
		t.Errorf("token after the refused redemption: %+v %v", op, err)
	}
	gc := s.client(t, good)
	if rep := s.over(t, gc, "POST", "/1.0/certificates", map[string]any{"trust_token": token}); rep.Code != 201 {
		t.Fatalf("good client redeems the same token: %s", rep)
	}
	if v := s.view(t, gc); v.Auth != "trusted" || v.Method != "tls" {
		t.Errorf("good client after redeeming: %+v", v)
	}
}

// TestCRLFile revokes with the real openssl CA (`openssl ca -revoke`,
// `openssl ca -gencrl`) and publishes through <dir>/ca.crl, in PEM and
// then in DER, with no restart.
func TestCRLFile(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	dir := t.TempDir()
	ossl := newOpenSSLCA(t, "file-ca")
	if err := os.WriteFile(filepath.Join(dir, "server.ca"), []byte(ossl.caPEM(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startPKI(t, dir, clock)
	alice, bob, carol, dave := ossl.issue(t, "alice", ""), ossl.issue(t, "bob", ""), ossl.issue(t, "carol", ""), ossl.issue(t, "dave", "")
	for _, c := range []*pkiCert{alice, bob} {
		s.trust(t, c, api.CertificatesPost{Name: c.X509.Subject.CommonName})
	}
	if v := s.view(t, s.client(t, alice)); v.Auth != "trusted" {
		t.Fatalf("alice before revocation: %+v", v)
	}

	t.Run("ok/PEM file", func(t *testing.T) {
		ossl.revoke(t, "alice")
		pemCRL, der := ossl.gencrl(t)
		before := s.lastSeq(t)
		info := s.writeCRLFile(t, pemCRL, der)
		if got := s.types(t, before+1); !cmp.Equal(got, []string{typeCRLUpdated}) {
			t.Errorf("ca.crl appended %v", got)
		}
		want := pki.CRLInfo{
			IssuerFingerprint: info.IssuerFingerprint, Number: "1", ThisUpdate: info.ThisUpdate, NextUpdate: info.NextUpdate,
			SHA256: pkiSHA256(der), Total: 1, Revoked: []string{alice.X509.SerialNumber.Text(16)},
		}
		if diff := cmp.Diff(want, info); diff != "" {
			t.Errorf("CRL in force (-want +got):\n%s", diff)
		}
		if d := info.NextUpdate.Sub(info.ThisUpdate); d != 7*24*time.Hour {
			t.Errorf("openssl default_crl_days 7, got a window of %v", d)
		}
		pkiRevocationChecks(t, s, alice, carol)
		if v := s.view(t, s.client(t, bob)); v.Auth != "trusted" {
			t.Errorf("bob, not revoked: %+v", v)
		}
	})
	t.Run("ok/DER file", func(t *testing.T) {
		ossl.revoke(t, "bob")
		_, der := ossl.gencrl(t)
		info := s.writeCRLFile(t, der, der)
		if info.Number != "2" || info.Total != 2 {
			t.Errorf("CRL in force: number %s, %d revoked", info.Number, info.Total)
		}
		pkiRevocationChecks(t, s, bob, dave)
	})
	t.Run("fail/older file", func(t *testing.T) {
		// The CRL with number 1 again: the watcher refuses it and logs why.
		before := s.lastSeq(t)
		ossl.write(t, "crlnumber", "01\n")
		oldPEM, _ := ossl.gencrl(t)
		path := filepath.Join(dir, "ca.crl")
		if err := os.WriteFile(path, oldPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(pkiPublishWait)
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		for !strings.Contains(s.log.String(), "CRL file not published") {
			if time.Now().After(deadline) {
				t.Fatalf("the older ca.crl was not refused within %v; log:\n%s", pkiPublishWait, s.log)
			}
			<-poll.C
		}
		if after := s.lastSeq(t); after != before {
			t.Errorf("the older ca.crl appended %v", s.types(t, before+1))
		}
		if info, _ := s.crl(t); info.Number != "2" {
			t.Errorf("CRL number in force %s, want 2", info.Number)
		}
	})
}

// TestCRLAPI publishes Go-made CRLs through PUT /1.0/trustlog/pki/crl, as
// PEM and as base64 DER.
func TestCRLAPI(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	now := clock.Now()
	ca := newPKICA(t, "api-ca", now)
	s.setCA(t, ca.PEM)
	alice, bob, carol := ca.client(t, "alice", now), ca.client(t, "bob", now), ca.client(t, "carol", now)
	s.trust(t, alice, api.CertificatesPost{Name: "alice"})
	s.trust(t, bob, api.CertificatesPost{Name: "bob"})

	t.Run("ok/PEM", func(t *testing.T) {
		der := ca.crl(t, 1, now, now.Add(24*time.Hour), alice.X509.SerialNumber)
		before := s.lastSeq(t)
		s.mustCall(t, 200, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))})
		if got := s.types(t, before+1); !cmp.Equal(got, []string{typeCRLUpdated}) {
			t.Errorf("PUT crl appended %v", got)
		}
		pkiRevocationChecks(t, s, alice, ca.client(t, "alice2", now))
		// The same list again is a no-op.
		before = s.lastSeq(t)
		s.mustCall(t, 200, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(der)})
		if after := s.lastSeq(t); after != before {
			t.Errorf("the same CRL again appended %v", s.types(t, before+1))
		}
	})
	t.Run("ok/base64 DER", func(t *testing.T) {
		der := ca.crl(t, 2, now, now.Add(24*time.Hour), alice.X509.SerialNumber, bob.X509.SerialNumber)
		s.setCRL(t, der)
		info, _ := s.crl(t)
		if info.Number != "2" || info.Total != 2 || info.SHA256 != pkiSHA256(der) {
			t.Errorf("CRL in force: %+v", info)
		}
		pkiRevocationChecks(t, s, bob, carol)
	})
	t.Run("ok/un-revoked by a newer list", func(t *testing.T) {
		dave := ca.client(t, "dave", now)
		s.trust(t, dave, api.CertificatesPost{Name: "dave"})
		s.setCRL(t, ca.crl(t, 3, now, now.Add(24*time.Hour), dave.X509.SerialNumber))
		if v := s.view(t, s.client(t, dave)); v.Auth != "untrusted" {
			t.Fatalf("dave revoked: %+v", v)
		}
		s.setCRL(t, ca.crl(t, 4, now, now.Add(24*time.Hour)))
		if v := s.view(t, s.client(t, dave)); v.Auth != "trusted" {
			t.Errorf("dave after a list without him: %+v", v)
		}
	})
}

// TestCRLBadInput: every bad CA or CRL is a 400 and leaves the stream's
// last sequence where it was.
func TestCRLBadInput(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	now := clock.Now()
	s := startPKI(t, t.TempDir(), clock)
	ca := newPKICA(t, "good-ca", now)
	other := newPKICA(t, "other-ca", now)
	s.setCA(t, ca.PEM)
	victim := ca.client(t, "victim", now)
	// thisUpdate an hour ahead, so that a list without a number made by
	// openssl now is older.
	current := ca.crl(t, 5, now.Add(time.Hour), now.Add(24*time.Hour), victim.X509.SerialNumber)
	s.setCRL(t, current)
	leaf := ca.client(t, "leaf", now)
	ossl := newOpenSSLCA(t, "unrelated-openssl-ca")
	osslPEM, _ := ossl.gencrl(t)
	b64 := base64.StdEncoding.EncodeToString
	pemCRL := func(der []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})) }
	_, noNumber := opensslWithGoCA(t, ca).gencrl(t)
	if parsed, err := x509.ParseRevocationList(noNumber); err != nil || parsed.Number != nil {
		t.Fatalf("openssl CRL without a number: %v, %+v", err, parsed)
	}

	tests := []struct {
		name string
		path string
		body any
		msg  string // a substring of the error
	}{
		{"fail/crl not signed by the CA", "crl", pki.CRLPut{CRL: b64(other.crl(t, 9, now, now.Add(time.Hour)))}, "not signed by the CA"},
		{"fail/crl of an openssl CA", "crl", pki.CRLPut{CRL: string(osslPEM)}, "not signed by the CA"},
		{"fail/crl garbage base64", "crl", pki.CRLPut{CRL: b64([]byte("garbage"))}, "Invalid CRL"},
		{"fail/crl garbage text", "crl", pki.CRLPut{CRL: "not a crl at all"}, "Invalid CRL"},
		{"fail/crl empty", "crl", pki.CRLPut{CRL: ""}, "Invalid CRL"},
		{"fail/crl truncated DER", "crl", pki.CRLPut{CRL: b64(current[:len(current)-10])}, "Invalid CRL"},
		{"fail/crl truncated PEM", "crl", pki.CRLPut{CRL: pemCRL(current)[:len(pemCRL(current))/2]}, "Invalid CRL"},
		{"fail/crl signature flipped", "crl", pki.CRLPut{CRL: b64(flipLastByte(ca.crl(t, 6, now, now.Add(time.Hour))))}, "Invalid CRL"},
		{"fail/crl certificate PEM", "crl", pki.CRLPut{CRL: leaf.PEM}, "Invalid CRL: PEM block is CERTIFICATE"},
		{"fail/crl older number", "crl", pki.CRLPut{CRL: b64(ca.crl(t, 4, now, now.Add(time.Hour)))}, "not newer"},
		{"fail/crl same number replacement", "crl", pki.CRLPut{CRL: b64(ca.crl(t, 5, now.Add(time.Minute), now.Add(time.Hour)))}, "not newer"},
		{"fail/crl without a number, older", "crl", pki.CRLPut{CRL: b64(noNumber)}, "not newer"},
		{"fail/crl not JSON", "crl", []byte("{"), ""},
		{"fail/ca no certificate", "ca", pki.CAPut{Certificate: "no PEM here"}, "no PEM certificate"},
		{"fail/ca CRL instead", "ca", pki.CAPut{Certificate: pemCRL(current)}, "no PEM certificate"},
		{"fail/ca key instead", "ca", pki.CAPut{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}))}, "no PEM certificate"},
		{"fail/ca not a CA", "ca", pki.CAPut{Certificate: leaf.PEM}, "not a certificate authority"},
		{"fail/ca truncated", "ca", pki.CAPut{Certificate: other.PEM[:len(other.PEM)-40]}, "no PEM certificate"},
		{"fail/ca garbage DER", "ca", pki.CAPut{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}))}, "Invalid CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.lastSeq(t)
			var rep pkiReply
			if raw, ok := tt.body.([]byte); ok {
				rep = pkiRawCall(t, s, "PUT", "/1.0/trustlog/pki/"+tt.path, raw)
			} else {
				rep = s.call(t, "PUT", "/1.0/trustlog/pki/"+tt.path, tt.body)
			}
			if rep.Code != 400 || rep.Env.ErrorCode != 400 || !strings.Contains(rep.Env.Error, tt.msg) {
				t.Errorf("got %s, want 400 with %q", rep, tt.msg)
			}
			if after := s.lastSeq(t); after != before {
				t.Errorf("the stream moved from %d to %d: %v", before, after, s.types(t, before+1))
			}
		})
	}
	if info, _ := s.crl(t); info.SHA256 != pkiSHA256(current) {
		t.Errorf("CRL in force changed: %+v", info)
	}
	if v := s.view(t, s.client(t, victim)); v.Auth != "untrusted" {
		t.Errorf("victim after the bad CRLs: %+v", v)
	}

	t.Run("fail/crl while PKI mode is off", func(t *testing.T) {
		off := startPKI(t, t.TempDir(), clock)
		before := off.lastSeq(t)
		rep := off.call(t, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: b64(current)})
		wantErr(t, "CRL with PKI mode off", rep, 400, "Invalid CRL: PKI mode is off (no CA is set)")
		if after := off.lastSeq(t); after != before {
			t.Errorf("the stream moved from %d to %d", before, after)
		}
		if _, ok := off.crl(t); ok {
			t.Error("a CRL is in force with PKI mode off")
		}
	})
}

func flipLastByte(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-1] ^= 0xff
	return out
}

// pkiRawCall sends raw bytes as the admin's request body.
func pkiRawCall(tb testing.TB, s *pkiServer, method, path string, raw []byte) pkiReply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pkiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://unix.socket"+path, bytes.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := s.admin.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	rep := pkiReply{Code: resp.StatusCode, Header: resp.Header, Body: body}
	_ = json.Unmarshal(body, &rep.Env)
	return rep
}

// keptAlive is one client on one connection, recording for every request
// whether the connection was reused.
type keptAlive struct {
	s      *pkiServer
	c      *http.Client
	reused []bool
	conns  map[string]bool
}

func (k *keptAlive) get(t *testing.T, path string) int {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		k.reused = append(k.reused, i.Reused)
		k.conns[i.Conn.LocalAddr().String()] = true
	}}
	ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(context.Background(), trace), pkiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+k.s.d.HTTPSAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := k.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // drained, so that the connection is kept
	return resp.StatusCode
}

// TestCRLRevokesKeptAliveClient is the issue's must-show: a CRL revoking
// a trusted client is published while the client holds a keep-alive
// connection; its next request on that very connection is refused, with
// no restart. Once through the API with a Go-made CRL, once through
// <dir>/ca.crl with an openssl-made one.
func TestCRLRevokesKeptAliveClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup puts a CA in force and returns a trusted client and a
		// function that publishes a CRL revoking it.
		setup func(t *testing.T, s *pkiServer) (*pkiCert, func())
	}{
		{"ok/API, Go CRL", func(t *testing.T, s *pkiServer) (*pkiCert, func()) {
			now := s.clock.Now()
			ca := newPKICA(t, "keepalive-ca", now)
			s.setCA(t, ca.PEM)
			c := ca.client(t, "kept", now)
			s.trust(t, c, api.CertificatesPost{Name: "kept"})
			return c, func() { s.setCRL(t, ca.crl(t, 1, now, now.Add(24*time.Hour), c.X509.SerialNumber)) }
		}},
		{"ok/ca.crl, openssl CRL", func(t *testing.T, s *pkiServer) (*pkiCert, func()) {
			ossl := newOpenSSLCA(t, "keepalive-openssl-ca")
			s.setCA(t, ossl.caPEM(t))
			c := ossl.issue(t, "kept", "")
			s.trust(t, c, api.CertificatesPost{Name: "kept"})
			return c, func() {
				ossl.revoke(t, "kept")
				pemCRL, der := ossl.gencrl(t)
				s.writeCRLFile(t, pemCRL, der)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startPKI(t, t.TempDir(), newPKIClock())
			cert, publish := tt.setup(t, s)
			k := &keptAlive{s: s, c: s.client(t, cert), conns: map[string]bool{}}
			for range 3 {
				if code := k.get(t, "/1.0/certificates"); code != 200 {
					t.Fatalf("trusted client before the CRL: %d", code)
				}
			}
			publish()
			if code := k.get(t, "/1.0/certificates"); code != 403 {
				t.Fatalf("revoked client's next request on its kept-alive connection: %d, want 403", code)
			}
			if code := k.get(t, "/1.0/metrics"); code != 403 {
				t.Errorf("revoked client on /1.0/metrics: %d, want 403", code)
			}
			if !slices.Equal(k.reused, []bool{false, true, true, true, true}) || len(k.conns) != 1 {
				t.Errorf("requests did not share one connection: reused %v over %d connections", k.reused, len(k.conns))
			}
		})
	}
}

// TestCRLStale: past the list's nextUpdate (on the injected clock) the
// list is still enforced, trustlog_crl_stale is 1, GET crl says stale and
// the log warns; with core.crl_fail_closed=true every CA-signed client is
// refused until a fresh list arrives; server entries are exempt.
func TestCRLStale(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	now := clock.Now()
	ca := newPKICA(t, "stale-ca", now)
	s.setCA(t, ca.PEM)
	good, revoked, metricsCert := ca.client(t, "good", now), ca.client(t, "revoked", now), ca.client(t, "metrics", now)
	member := selfSigned(t, "member", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	s.trust(t, good, api.CertificatesPost{Name: "good"})
	s.trust(t, revoked, api.CertificatesPost{Name: "revoked"})
	s.trust(t, metricsCert, api.CertificatesPost{Name: "metrics", Type: "metrics"})
	s.trust(t, member, api.CertificatesPost{Name: "member", Type: "server"})
	s.setCRL(t, ca.crl(t, 1, now, now.Add(time.Hour), revoked.X509.SerialNumber))
	goodC, revokedC, metricsC, memberC, loner := s.client(t, good), s.client(t, revoked), s.client(t, metricsCert), s.client(t, member), s.client(t, ca.client(t, "loner", now))

	staleMetric := func() string {
		t.Helper()
		rep := s.over(t, metricsC, "GET", "/1.0/metrics", nil)
		if rep.Code != 200 {
			t.Fatalf("metrics: %s", rep)
		}
		return pkiMetricLine(string(rep.Body), "trustlog_crl_stale")
	}
	auth := func(c *http.Client) string { return s.view(t, c).Auth }

	if got := staleMetric(); got != "trustlog_crl_stale 0" {
		t.Errorf("fresh list: %q", got)
	}
	clock.Advance(2 * time.Hour)
	t.Run("ok/stale is enforced and warned about", func(t *testing.T) {
		if got := staleMetric(); got != "trustlog_crl_stale 1" {
			t.Errorf("stale list: %q", got)
		}
		if info, _ := s.crl(t); !info.Stale {
			t.Errorf("GET crl: %+v, want stale", info)
		}
		if a := auth(goodC); a != "trusted" {
			t.Errorf("good client with a stale list: %s", a)
		}
		if a := auth(revokedC); a != "untrusted" {
			t.Errorf("revoked client with a stale list: %s", a)
		}
		deadline := time.Now().Add(pkiPublishWait)
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		for !strings.Contains(s.log.String(), "past its nextUpdate") {
			if time.Now().After(deadline) {
				t.Fatalf("no stale warning within %v; log:\n%s", pkiPublishWait, s.log)
			}
			<-poll.C
		}
	})
	t.Run("ok/fail closed", func(t *testing.T) {
		s.setConfig(t, "core.crl_fail_closed", "true", "core.trust_ca_certificates", "true")
		for name, c := range map[string]*http.Client{"good": goodC, "revoked": revokedC, "pki": loner} {
			if a := auth(c); a != "untrusted" {
				t.Errorf("%s client, stale list, fail closed: %s", name, a)
			}
		}
		if rep := s.over(t, metricsC, "GET", "/1.0/metrics", nil); rep.Code != 403 {
			t.Errorf("metrics client, stale list, fail closed: %s", rep)
		}
		if v := s.view(t, memberC); v.Auth != "trusted" || v.Method != "cluster" {
			t.Errorf("server entry, stale list, fail closed: %+v", v)
		}
		// A fresh list lets them back in.
		now := clock.Now()
		s.setCRL(t, ca.crl(t, 2, now, now.Add(time.Hour), revoked.X509.SerialNumber))
		if a := auth(goodC); a != "trusted" {
			t.Errorf("good client, fresh list: %s", a)
		}
		if v := s.view(t, loner); v.Auth != "trusted" || v.Method != "pki" {
			t.Errorf("pki client, fresh list: %+v", v)
		}
		if a := auth(revokedC); a != "untrusted" {
			t.Errorf("revoked client, fresh list: %s", a)
		}
		if got := staleMetric(); got != "trustlog_crl_stale 0" {
			t.Errorf("fresh list: %q", got)
		}
	})
}

// pkiMetricLine returns the sample line of an unlabelled metric in a
// Prometheus text exposition, or "".
func pkiMetricLine(text, name string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// TestCRLLarge publishes a Go-made CRL of 100,000 serials: five events
// (CRLUpdated and four CRLRevocations) adjacent on the stream, and the
// list takes effect whole: folding the stream stops short of it until the
// last part is in.
func TestCRLLarge(t *testing.T) {
	t.Parallel()
	const total = 100_000
	clock := newPKIClock()
	now := clock.Now()
	ca := newPKICA(t, "large-ca", now)
	first, last, good := ca.client(t, "first", now), ca.client(t, "last", now), ca.client(t, "good", now)
	serials := make([]*big.Int, total)
	serials[0], serials[total-1] = first.X509.SerialNumber, last.X509.SerialNumber
	for i := 1; i < total-1; i++ {
		serials[i] = pkiSerial(t)
	}
	der := ca.crl(t, 2, now, now.Add(24*time.Hour), serials...)
	t.Logf("CRL of %d serials: %d bytes DER", total, len(der))

	tests := []struct {
		name    string
		publish func(t *testing.T, s *pkiServer)
	}{
		{"ok/API", func(t *testing.T, s *pkiServer) { s.setCRL(t, der) }},
		{"ok/ca.crl", func(t *testing.T, s *pkiServer) { s.writeCRLFile(t, der, der) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startPKI(t, t.TempDir(), clock)
			s.setCA(t, ca.PEM)
			for _, c := range []*pkiCert{first, last, good} {
				s.trust(t, c, api.CertificatesPost{Name: c.X509.Subject.CommonName})
			}
			s.setCRL(t, ca.crl(t, 1, now, now.Add(24*time.Hour)))
			before := s.lastSeq(t)
			tt.publish(t, s)
			want := []string{typeCRLUpdated, typeCRLRevocations, typeCRLRevocations, typeCRLRevocations, typeCRLRevocations}
			if got := s.types(t, before+1); !cmp.Equal(got, want) {
				t.Fatalf("a %d-entry CRL appended %v, want %v", total, got, want)
			}
			recs := s.records(t, before+1)
			for i, r := range recs {
				if r.Seq != before+1+uint64(i) {
					t.Errorf("part %d at sequence %d, want %d", i+1, r.Seq, before+1+uint64(i))
				}
			}
			pkiCheckParts(t, recs, total, pkiSHA256(der))
			pkiCheckFoldWhole(t, s, before, pkiSHA256(der))

			info, _ := s.crl(t)
			if info.Total != total || len(info.Revoked) != total || info.SHA256 != pkiSHA256(der) {
				t.Errorf("CRL in force: total %d, %d serials, sha %s", info.Total, len(info.Revoked), info.SHA256)
			}
			for name, c := range map[string]*pkiCert{"first (part 1)": first, "last (part 5)": last} {
				if v := s.view(t, s.client(t, c)); v.Auth != "untrusted" {
					t.Errorf("%s: %+v", name, v)
				}
			}
			if v := s.view(t, s.client(t, good)); v.Auth != "trusted" {
				t.Errorf("good client: %+v", v)
			}
		})
	}
}

// pkiCheckParts checks the five events of a large list: sizes, indexes,
// and that together they carry every serial once.
func pkiCheckParts(t *testing.T, recs []events.Record, total int, sha string) {
	t.Helper()
	seen := make(map[string]struct{}, total)
	for i, r := range recs {
		if len(r.Raw) >= 1<<20 {
			t.Errorf("part %d is %d bytes, over NATS's default 1 MiB", i+1, len(r.Raw))
		}
		env, err := events.Decode(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		p, err := env.Payload()
		if err != nil {
			t.Fatal(err)
		}
		var part []string
		switch e := p.(type) {
		case *events.CRLUpdated:
			if i != 0 || e.Parts != 5 || e.Total != total || e.SHA256 != sha || e.Number != "2" {
				t.Errorf("event %d: CRLUpdated parts %d total %d number %s", i+1, e.Parts, e.Total, e.Number)
			}
			part = e.Revoked
		case *events.CRLRevocations:
			if e.Part != i+1 || e.SHA256 != sha {
				t.Errorf("event %d: CRLRevocations part %d", i+1, e.Part)
			}
			part = e.Revoked
		default:
			t.Fatalf("event %d: %T", i+1, p)
		}
		if len(part) != pki.PartSize {
			t.Errorf("part %d carries %d serials, want %d", i+1, len(part), pki.PartSize)
		}
		for _, sn := range part {
			seen[sn] = struct{}{}
		}
	}
	if len(seen) != total {
		t.Errorf("the parts carry %d distinct serials, want %d", len(seen), total)
	}
}

// pkiCheckFoldWhole folds the stream up to each part of the list appended
// after sequence before: the new list is in force only once every part is
// in, and the old list stays in force until then.
func pkiCheckFoldWhole(t *testing.T, s *pkiServer, before uint64, sha string) {
	t.Helper()
	b := projections.NewBuilder(nil)
	for _, r := range s.records(t, 1) {
		if err := b.Apply(r); err != nil {
			t.Fatal(err)
		}
		if r.Seq <= before {
			continue
		}
		got := b.Model().CRL()
		complete := r.Seq == s.lastSeq(t)
		if complete != (got != nil && got.SHA256 == sha) {
			t.Errorf("after sequence %d (part %d of 5): list in force %v", r.Seq, r.Seq-before, got != nil && got.SHA256 == sha)
		}
		if !complete && (got == nil || got.Number != "1") {
			t.Errorf("after sequence %d: the old list is no longer in force", r.Seq)
		}
	}
}

// pkiIncus is the stock incus client with its own HOME and INCUS_CONF.
type pkiIncus struct {
	bin  string
	env  []string
	conf string
}

func newPKIIncus(t *testing.T) *pkiIncus {
	t.Helper()
	c := &pkiIncus{bin: toolbin.Incus(t), env: toolbin.IncusEnv(t)}
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "INCUS_CONF="); ok {
			c.conf = v
		}
	}
	if c.conf == "" {
		t.Fatal("toolbin.IncusEnv set no INCUS_CONF")
	}
	return c
}

// install copies src into the client's configuration directory as name.
func (c *pkiIncus) install(t *testing.T, src, name string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.conf, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs incus with no stdin at all (an empty reader), bounded in time,
// and returns its combined output.
func (c *pkiIncus) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("incus %s timed out", strings.Join(args, " "))
	}
	return string(out), err
}

func (c *pkiIncus) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("incus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// query runs `incus query <remote>:/1.0` and decodes the server object.
func (c *pkiIncus) query(t *testing.T, remote string) api.Server {
	t.Helper()
	var srv api.Server
	out := c.must(t, "query", remote+":/1.0")
	if err := json.Unmarshal([]byte(out), &srv); err != nil {
		t.Fatalf("incus query: %v\n%s", err, out)
	}
	return srv
}

// TestIncusClientPKI drives the stock incus client (v6.22.0) against a
// PKI-mode trustlogd serving a server certificate signed by the CA
// (openssl, SANs 127.0.0.1 and a DNS name). With client.ca in INCUS_CONF,
// `incus remote add` verifies the server by the CA: neither the
// fingerprint prompt nor --accept-certificate, and no stdin. With
// core.trust_ca_certificates=true a CA-signed incus client is trusted with
// no token and no trust-store entry.
func TestIncusClientPKI(t *testing.T) {
	t.Parallel()
	// Built (or found in the cache) before the server's clock starts: on a
	// fresh machine the build takes minutes, and the certificates issued
	// after it would not be valid yet by a clock read before it.
	toolbin.Incus(t)
	ossl := newOpenSSLCA(t, "incus-pki-ca")
	srvCert := ossl.issue(t, "trustlog-server",
		"subjectAltName = IP:127.0.0.1, DNS:trustlog.test\nextendedKeyUsage = serverAuth\nkeyUsage = critical, digitalSignature")
	dir := t.TempDir()
	for src, dst := range map[string]string{"trustlog-server.crt": "server.crt", "trustlog-server.key": "server.key", "ca.crt": "server.ca"} {
		b := ossl.read(t, src)
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := startPKI(t, dir, newPKIClock())
	if s.d.Fingerprint() != srvCert.FP {
		t.Fatalf("trustlogd serves %s, not the CA-signed server.crt %s", s.d.Fingerprint(), srvCert.FP)
	}
	url := "https://" + s.d.HTTPSAddr()

	t.Run("ok/entry, client.ca, no prompt", func(t *testing.T) {
		cli := newPKIIncus(t)
		alice := ossl.issue(t, "incus-alice", "extendedKeyUsage = clientAuth")
		cli.install(t, ossl.path("ca.crt"), "client.ca")
		cli.install(t, ossl.path("incus-alice.crt"), "client.crt")
		cli.install(t, ossl.path("incus-alice.key"), "client.key")
		s.trust(t, alice, api.CertificatesPost{Name: "incus-alice"})

		out := cli.must(t, "remote", "add", "p", url)
		if strings.Contains(out, "Certificate fingerprint") || strings.Contains(out, "ok (y/n") || strings.Contains(out, "Trust token") {
			t.Errorf("incus remote add prompted:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(cli.conf, "servercerts", "p.crt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the server certificate was pinned (%v), not verified by client.ca", err)
		}
		srv := cli.query(t, "p")
		if srv.Auth != "trusted" || srv.AuthUserMethod != "tls" || srv.AuthUserName != alice.FP {
			t.Errorf("incus query p:/1.0: auth %q method %q name %q", srv.Auth, srv.AuthUserMethod, srv.AuthUserName)
		}
		if list := cli.must(t, "config", "trust", "list", "p:", "--format", "csv"); !strings.Contains(list, "incus-alice") {
			t.Errorf("incus config trust list:\n%s", list)
		}
	})
	t.Run("fail/no client.ca prompts", func(t *testing.T) {
		// The control: without client.ca the client cannot verify the
		// server and asks about the fingerprint; with no stdin it fails.
		cli := newPKIIncus(t)
		out, err := cli.run(t, "remote", "add", "p", url)
		if err == nil || !strings.Contains(out, "Certificate fingerprint: "+srvCert.FP) {
			t.Errorf("incus remote add without client.ca: %v\n%s", err, out)
		}
	})
	t.Run("ok/trust_ca, no token", func(t *testing.T) {
		s.setConfig(t, "core.trust_ca_certificates", "true")
		cli := newPKIIncus(t)
		bob := ossl.issue(t, "incus-bob", "extendedKeyUsage = clientAuth")
		cli.install(t, ossl.path("ca.crt"), "client.ca")
		cli.install(t, ossl.path("incus-bob.crt"), "client.crt")
		cli.install(t, ossl.path("incus-bob.key"), "client.key")
		before := s.lastSeq(t)

		out := cli.must(t, "remote", "add", "p", url)
		if strings.Contains(out, "Trust token") || strings.Contains(out, "Certificate fingerprint") {
			t.Errorf("incus remote add prompted:\n%s", out)
		}
		srv := cli.query(t, "p")
		if srv.Auth != "trusted" || srv.AuthUserMethod != "pki" || srv.AuthUserName != bob.FP {
			t.Errorf("incus query p:/1.0: auth %q method %q name %q", srv.Auth, srv.AuthUserMethod, srv.AuthUserName)
		}
		if after := s.lastSeq(t); after != before {
			t.Errorf("a CA-trusted client was recorded: %v", s.types(t, before+1))
		}
		if rep := s.call(t, "GET", "/1.0/certificates/"+bob.FP, nil); rep.Code != 404 {
			t.Errorf("the CA-trusted client has an entry: %s", rep)
		}
		// A self-signed incus client is still refused.
		stranger := newPKIIncus(t)
		stranger.install(t, ossl.path("ca.crt"), "client.ca")
		if out, err := stranger.run(t, "remote", "add", "p", url); err == nil || !strings.Contains(out, "Trust token for p") {
			t.Errorf("a self-signed incus client, trust_ca on: %v\n%s", err, out)
		}
	})
}

// TestCRLFileAfterCAChange: a CA change clears the CRL in force (the list
// belongs to the old CA). When the CA whose list is in <dir>/ca.crl is put
// back, the watcher publishes the unchanged file again, so its
// revocations come back without a restart or a touch of the file.
func TestCRLFileAfterCAChange(t *testing.T) {
	t.Parallel()
	clock := newPKIClock()
	s := startPKI(t, t.TempDir(), clock)
	ossl := newOpenSSLCA(t, "round-trip-ca")
	other := newPKICA(t, "other-ca", clock.Now())
	s.setCA(t, ossl.caPEM(t))
	victim := ossl.issue(t, "victim", "")
	s.trust(t, victim, api.CertificatesPost{Name: "victim"})
	ossl.revoke(t, "victim")
	pemCRL, der := ossl.gencrl(t)
	s.writeCRLFile(t, pemCRL, der)
	if v := s.view(t, s.client(t, victim)); v.Auth != "untrusted" {
		t.Fatalf("victim after ca.crl: %+v", v)
	}

	s.setCA(t, other.PEM)
	if _, ok := s.crl(t); ok {
		t.Fatal("the old CA's list is in force under the new CA")
	}
	s.setCA(t, ossl.caPEM(t))
	// The file is the same; only the CA in force changed back.
	deadline := time.Now().Add(pkiPublishWait)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if info, ok := s.crl(t); ok && info.SHA256 == pkiSHA256(der) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ca.crl not published again within %v after its CA came back; log:\n%s", pkiPublishWait, s.log)
		}
		<-poll.C
	}
	if v := s.view(t, s.client(t, victim)); v.Auth != "untrusted" {
		t.Errorf("victim after its CA came back: %+v", v)
	}
}
