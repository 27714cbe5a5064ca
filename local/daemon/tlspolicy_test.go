package daemon_test

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/local/daemon"
)

// TestTLS12CipherSuites: the TLS 1.2 suites are ECDHE with an AEAD cipher,
// none of them on Go's insecure list.
func TestTLS12CipherSuites(t *testing.T) {
	t.Parallel()
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	suites := daemon.TLS12CipherSuites()
	if len(suites) == 0 {
		t.Fatal("no TLS 1.2 suite")
	}
	for _, id := range suites {
		name := tls.CipherSuiteName(id)
		aead := strings.Contains(name, "_GCM_") || strings.HasSuffix(name, "_CHACHA20_POLY1305_SHA256")
		if !secure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || !aead {
			t.Errorf("%s is not ECDHE with AES-GCM or ChaCha20-Poly1305", name)
		}
	}
	if cfg := daemon.ServerTLSConfig(false); cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("default floor %x, want TLS 1.3", cfg.MinVersion)
	}
	if cfg := daemon.ServerTLSConfig(true); cfg.MinVersion != tls.VersionTLS12 || !slices.Equal(cfg.CipherSuites, suites) {
		t.Errorf("insecure: floor %x suites %v", cfg.MinVersion, cfg.CipherSuites)
	}
}

// TestDaemonTLS12Suites handshakes with the HTTPS listener as TLS 1.2
// clients offering one suite each: with InsecureTLS only ECDHE with
// AES-GCM or ChaCha20-Poly1305 is accepted (the CBC suites, SHA-1 or
// SHA-256, are refused), and without it TLS 1.2 is refused whatever the
// suite.
func TestDaemonTLS12Suites(t *testing.T) {
	t.Parallel()
	insecure := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) { c.InsecureTLS = true })
	strict := dmStart(t, dmShortDir(t), newTestClock())
	for _, tc := range []struct {
		name   string
		td     *dmDaemon
		suite  uint16
		wantOK bool
	}{
		{name: "fail/ecdhe-ecdsa-aes128-cbc-sha", td: insecure, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		{name: "fail/ecdhe-ecdsa-aes256-cbc-sha", td: insecure, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
		{name: "fail/ecdhe-ecdsa-aes128-cbc-sha256", td: insecure, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256},
		{name: "ok/ecdhe-ecdsa-aes128-gcm", td: insecure, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, wantOK: true},
		{name: "ok/ecdhe-ecdsa-aes256-gcm", td: insecure, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, wantOK: true},
		{name: "ok/ecdhe-ecdsa-chacha20-poly1305", td: insecure, suite: tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, wantOK: true},
		{name: "fail/strict-aes128-gcm", td: strict, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{name: "fail/strict-aes128-cbc-sha", td: strict, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.td.tlsConfig(t, nil, tls.VersionTLS12, tls.VersionTLS12)
			cfg.CipherSuites = []uint16{tc.suite}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: dmTimeout}, "tcp", tc.td.d.HTTPSAddr(), cfg)
			if !tc.wantOK {
				if err == nil {
					st := conn.ConnectionState()
					conn.Close()
					t.Fatalf("TLS %x with %s accepted", st.Version, tls.CipherSuiteName(st.CipherSuite))
				}
				if !strings.Contains(err.Error(), "tls: ") {
					t.Errorf("refused, but not by TLS: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s refused: %v", tls.CipherSuiteName(tc.suite), err)
			}
			defer conn.Close()
			if st := conn.ConnectionState(); st.Version != tls.VersionTLS12 || st.CipherSuite != tc.suite {
				t.Errorf("negotiated TLS %x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}
}
