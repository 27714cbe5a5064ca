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

	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// server is a trustlogd started for one test, with an admin client on its
// unix socket.
type server struct {
	d     *daemon.Daemon
	admin *http.Client
	log   *bytes.Buffer

	mu        sync.Mutex
	secrets   []string // token secrets handed out in the test
	storeDirs []string // JetStream directories besides <data dir>/nats/jetstream
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

// storeAt names the JetStream directory (server.StoreDir) of an external
// NATS server the daemon uses, for the secret scan to read should the
// server be shut down before the test ends.
func (s *server) storeAt(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storeDirs = append(s.storeDirs, dir)
}

// scanForSecrets fails the test if any stored event holds a private key or
// a token secret handed out during the test, or if no event can be read.
// It reads the stream; when the stream is gone (the test shut its NATS
// server down, or closed the daemon) it reads the stream's files on disk.
func (s *server) scanForSecrets(t testing.TB) {
	s.mu.Lock()
	secrets := slices.Clone(s.secrets)
	s.mu.Unlock()
	for _, secret := range secrets {
		if strings.Contains(s.log.String(), secret) {
			t.Error("a token secret appears in the daemon's log")
		}
	}
	stored, err := s.streamEvents()
	if err != nil {
		files, ferr := s.storeFiles()
		if ferr != nil {
			t.Errorf("secret scan: the stream is unreachable (%v), and its files too: %v", err, ferr)
			return
		}
		stored = files
	}
	for where, raw := range stored {
		if bytes.Contains(raw, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key", where)
		}
		for _, secret := range secrets {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s holds a token secret", where)
			}
		}
	}
}

// streamEvents reads every event of the stream, by "event <seq>".
func (s *server) streamEvents() (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	last, err := s.d.Store().LastSeq(lctx)
	lcancel()
	if err != nil {
		return nil, err
	}
	recs, err := s.d.Store().Read(ctx, 1, last)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(recs))
	for _, rec := range recs {
		out[fmt.Sprintf("event %d", rec.Seq)] = rec.Raw
	}
	return out, nil
}

// storeFiles reads the message blocks of the stream in the JetStream
// directories (<data dir>/nats/jetstream, the embedded server's, and those
// given to storeAt), by file name. It fails if there are none, or if none holds an
// event in clear (a compressed or encrypted store could not be scanned).
func (s *server) storeFiles() (map[string][]byte, error) {
	s.mu.Lock()
	dirs := append([]string{filepath.Join(filepath.Dir(s.d.UnixSocket()), "nats", "jetstream")}, s.storeDirs...)
	s.mu.Unlock()
	out := map[string][]byte{}
	inClear := false
	for _, dir := range dirs {
		blocks, err := filepath.Glob(filepath.Join(dir, "*", "streams", natsstore.DefaultStream, "msgs", "*.blk"))
		if err != nil {
			return nil, err
		}
		for _, b := range blocks {
			raw, err := os.ReadFile(b)
			if err != nil {
				return nil, err
			}
			out[b] = raw
			inClear = inClear || bytes.Contains(raw, []byte(`"specversion"`))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no message block of stream %s under %v", natsstore.DefaultStream, dirs)
	}
	if !inClear {
		return nil, fmt.Errorf("no event in clear in the %d message blocks under %v", len(out), dirs)
	}
	return out, nil
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
