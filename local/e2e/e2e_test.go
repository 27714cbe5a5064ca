package e2e_test

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
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// server is a trustlogd started for one test, with an admin client on its
// unix socket.
type server struct {
	d     *daemon.Daemon
	admin *http.Client
	log   *bytes.Buffer

	mu      sync.Mutex
	secrets []string // token secrets handed out in the test
}

// newServer wraps a started daemon. When the test ends (before the daemon
// closes) it scans every event the test stored: no private key and no
// token secret handed out may appear in the log, nor in the daemon's log.
func newServer(t testing.TB, d *daemon.Daemon, log *bytes.Buffer) *server {
	t.Helper()
	if log == nil {
		log = &bytes.Buffer{}
	}
	s := &server{d: d, admin: unixClient(d.UnixSocket()), log: log}
	t.Cleanup(func() { s.scanForSecrets(t) })
	return s
}

// scanForSecrets fails the test if any stored event holds a private key or
// a token secret handed out during the test.
func (s *server) scanForSecrets(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lctx, lcancel := context.WithTimeout(ctx, time.Second)
	last, err := s.d.Store().LastSeq(lctx)
	lcancel()
	if err != nil {
		// Only tests that take the stream away get here.
		t.Logf("secret scan skipped, the stream is unreachable: %v", err)
		return
	}
	recs, err := s.d.Store().Read(ctx, 1, last)
	if err != nil {
		t.Errorf("secret scan: %v", err)
		return
	}
	s.mu.Lock()
	secrets := slices.Clone(s.secrets)
	s.mu.Unlock()
	for _, rec := range recs {
		if bytes.Contains(rec.Raw, []byte("PRIVATE KEY")) {
			t.Errorf("event %d holds a private key", rec.Seq)
		}
		for _, secret := range secrets {
			if bytes.Contains(rec.Raw, []byte(secret)) {
				t.Errorf("event %d holds a token secret", rec.Seq)
			}
		}
	}
	for _, secret := range secrets {
		if strings.Contains(s.log.String(), secret) {
			t.Error("a token secret appears in the daemon's log")
		}
	}
}

func start(t *testing.T) *server {
	t.Helper()
	var logBuf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return newServer(t, d, &logBuf)
}

// unixClient returns an HTTP client for the daemon's unix socket (admin).
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		}}}
}

// call sends a request through the unix socket and decodes the envelope.
func (s *server) call(t testing.TB, method, path string, body any) (int, api.Response) {
	t.Helper()
	return do(t, s.admin, method, "http://unix.socket"+path, body)
}

func do(t testing.TB, c *http.Client, method, url string, body any) (int, api.Response) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var env api.Response
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s %s: decode envelope: %v", method, url, err)
	}
	return resp.StatusCode, env
}

// tlsClient returns an HTTPS client presenting cert, TLS 1.3.
func tlsClient(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} // the tests check trust, not the server name
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// newCert makes a self-signed P-384 client certificate and writes it (and
// its key, as EC PRIVATE KEY) into dir as name.crt / name.key.
func newCert(t *testing.T, dir, name string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(k)
	crtPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), crtPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pair, err := tls.X509KeyPair(crtPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := x509.ParseCertificate(der)
	return pair, x
}

func fingerprintOf(c *x509.Certificate) string {
	sum := sha256sum(c.Raw)
	return sum
}

// trust adds a certificate through the unix socket, as an admin would.
func (s *server) trust(t testing.TB, c *x509.Certificate, name string) {
	t.Helper()
	code, env := s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: name, Certificate: base64.StdEncoding.EncodeToString(c.Raw)})
	if code != http.StatusCreated {
		t.Fatalf("trust %s: %d %s", name, code, env.Error)
	}
}

// lastSeq returns the stream's last sequence.
func (s *server) lastSeq(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seq, err := s.d.Store().LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// run runs a command with a bounded time and returns its combined output.
func run(t *testing.T, env []string, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s timed out", name)
	}
	return string(out), err
}

// lockedWriter serialises writes of concurrent loggers into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func sha256sum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
