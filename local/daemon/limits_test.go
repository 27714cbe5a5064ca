package daemon_test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// readUntilClosed reads c until the server closes it, failing the test if
// that takes longer than within.
func readUntilClosed(t *testing.T, c net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", within)
	}
	return time.Since(start)
}

// TestSlowClients: a client that never finishes its TLS handshake, or its
// request headers, is cut off after the header timeout.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) { c.HeaderTimeout = 300 * time.Millisecond })
	addr := td.d.HTTPSAddr()

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	readUntilClosed(t, silent, 10*time.Second)

	slow, err := tls.Dial("tcp", addr, td.tlsConfig(t, nil, tls.VersionTLS13, tls.VersionTLS13))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET /1.0 HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	readUntilClosed(t, slow, 10*time.Second)

	// A normal client still gets its answer.
	if got := td.server(t, td.client(t, nil)); got.Auth != "untrusted" {
		t.Errorf("GET /1.0 after the slow clients: %+v", got)
	}
}

// TestConnectionsPerSource: connections from one address beyond the cap
// are closed at once; a freed slot can be used again.
func TestConnectionsPerSource(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) { c.MaxConnsPerSource = 3 })
	addr := td.d.HTTPSAddr()
	cfg := td.tlsConfig(t, nil, tls.VersionTLS13, tls.VersionTLS13)
	var held []*tls.Conn
	for range 3 {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("connection within the cap: %v", err)
		}
		held = append(held, c)
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	readUntilClosed(t, over, 10*time.Second)
	over.Close()
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after one was freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

// TestBreakGlassExpiredCertificate: with an expired served certificate
// (a renewal that never came), trustlogd still starts and its unix socket
// answers, so an operator can fix the configuration or the certificate.
func TestBreakGlassExpiredCertificate(t *testing.T) {
	t.Parallel()
	dir := dmShortDir(t)
	clock := newTestClock()
	expired := newDMCert(t, "trust.example.com", clock.Now().Add(-48*time.Hour), clock.Now().Add(-time.Hour))
	keyDER, err := x509.MarshalECPrivateKey(expired.Pair.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: expired.X509.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	td := dmStart(t, dir, clock)
	if td.d.Fingerprint() != expired.FP {
		t.Fatalf("served %s, want the expired certificate %s", td.d.Fingerprint(), expired.FP)
	}
	if got := td.call(t, nil, "GET", "/1.0", nil); got.Code != 200 {
		t.Errorf("unix socket with an expired served certificate: %+v", got)
	}
	if got := td.call(t, nil, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"user.fixed": "yes"}}); got.Code != 200 {
		t.Errorf("configuration change over the unix socket: %+v", got)
	}
}
