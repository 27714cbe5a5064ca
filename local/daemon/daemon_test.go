package daemon_test

// trustlogd as a host: its files, its listeners and their TLS floor,
// restarts on the same data directory, moving the HTTPS listener when
// core.https_address changes, and racing writers. Requests go over real
// TLS to the HTTPS listener and over the unix socket (the local admin).
//
// The helpers here carry a "dm" prefix: other test files of this package
// are written at the same time, and names must not collide.

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
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// dmTimeout bounds each start, request, stream read and wait.
const dmTimeout = 30 * time.Second

// dmDaemon is one trustlogd under test with an admin client on its socket.
type dmDaemon struct {
	d     *daemon.Daemon
	dir   string
	clock *testClock
	log   *testLog
	admin *http.Client
}

// dmShortDir returns a fresh directory with a short path: the unix socket
// lives in it, and socket paths are limited to about 100 bytes.
func dmShortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tld")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// dmStart starts trustlogd on dir with HTTPS on a free loopback port. It is
// closed when the test ends.
func dmStart(t *testing.T, dir string, clock *testClock, edit ...func(*daemon.Config)) *dmDaemon {
	t.Helper()
	d, logs, err := dmTryStart(dir, clock, edit...)
	if err != nil {
		t.Fatalf("start trustlogd: %v\n%s", err, logs)
	}
	t.Cleanup(func() { d.Close() })
	sock := d.UnixSocket()
	admin := &http.Client{Timeout: dmTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(admin.CloseIdleConnections)
	return &dmDaemon{d: d, dir: dir, clock: clock, log: logs, admin: admin}
}

func dmTryStart(dir string, clock *testClock, edit ...func(*daemon.Config)) (*daemon.Daemon, *testLog, error) {
	logs := &testLog{}
	cfg := daemon.Config{
		Dir:          dir,
		HTTPSAddress: "127.0.0.1:0",
		Now:          clock.Now,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	defer cancel()
	d, err := daemon.Start(ctx, cfg)
	return d, logs, err
}

// dmCert is a client certificate with its key.
type dmCert struct {
	Pair tls.Certificate
	X509 *x509.Certificate
	FP   string
}

func (c *dmCert) B64() string { return base64.StdEncoding.EncodeToString(c.X509.Raw) }

// newDMCert makes a P-384 client certificate valid in [nb, na].
func newDMCert(t *testing.T, cn string, nb, na time.Time) *dmCert {
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &dmCert{Pair: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: x}, X509: x, FP: hex.EncodeToString(sum[:])}
}

// cert makes a client certificate valid for a day around the daemon's clock.
func (td *dmDaemon) cert(t *testing.T, cn string) *dmCert {
	t.Helper()
	now := td.clock.Now()
	return newDMCert(t, cn, now.Add(-time.Hour), now.Add(24*time.Hour))
}

// dmTLSConfig is a client configuration that trusts exactly the daemon's
// server.crt, between TLS versions min and max, presenting c if not nil.
func (td *dmDaemon) tlsConfig(t *testing.T, c *dmCert, minV, maxV uint16) *tls.Config {
	t.Helper()
	crt, err := os.ReadFile(filepath.Join(td.dir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(crt) {
		t.Fatal("server.crt holds no certificate")
	}
	cfg := &tls.Config{MinVersion: minV, MaxVersion: maxV, RootCAs: roots, ServerName: "127.0.0.1"}
	if c != nil {
		cfg.Certificates = []tls.Certificate{c.Pair}
	}
	return cfg
}

// client returns a TLS 1.3 client presenting c (none if nil).
func (td *dmDaemon) client(t *testing.T, c *dmCert) *http.Client {
	t.Helper()
	hc := &http.Client{Timeout: dmTimeout, Transport: &http.Transport{
		TLSClientConfig: td.tlsConfig(t, c, tls.VersionTLS13, 0), ForceAttemptHTTP2: true}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// dmReply is one exchange's outcome.
type dmReply struct {
	Code   int
	Header http.Header
	Raw    []byte
	Env    api.Response
}

func (r dmReply) String() string { return fmt.Sprintf("%d %s", r.Code, bytes.TrimSpace(r.Raw)) }

// dmSend sends a request; body is JSON-encoded unless it is a string. It
// returns an error instead of failing, so goroutines can use it.
func dmSend(c *http.Client, method, url string, body any) (dmReply, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return dmReply{}, err
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return dmReply{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return dmReply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return dmReply{}, err
	}
	rep := dmReply{Code: resp.StatusCode, Header: resp.Header, Raw: raw}
	if err := json.Unmarshal(raw, &rep.Env); err != nil {
		return rep, fmt.Errorf("%s %s: not an envelope: %w: %s", method, url, err, raw)
	}
	return rep, nil
}

// call sends a request over the unix socket (c nil) or over HTTPS.
func (td *dmDaemon) call(t *testing.T, c *http.Client, method, path string, body any) dmReply {
	t.Helper()
	url := "https://" + td.d.HTTPSAddr() + path
	if c == nil {
		c, url = td.admin, "http://unix.socket"+path
	}
	rep, err := dmSend(c, method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return rep
}

// must calls and checks the status.
func (td *dmDaemon) must(t *testing.T, want int, c *http.Client, method, path string, body any) dmReply {
	t.Helper()
	rep := td.call(t, c, method, path, body)
	if rep.Code != want {
		t.Fatalf("%s %s: %s, want HTTP %d", method, path, rep, want)
	}
	return rep
}

// server returns GET /1.0 as c sees it.
func (td *dmDaemon) server(t *testing.T, c *http.Client) api.Server {
	t.Helper()
	rep := td.must(t, 200, c, "GET", "/1.0", nil)
	var srv api.Server
	if err := json.Unmarshal(rep.Env.Metadata, &srv); err != nil {
		t.Fatal(err)
	}
	return srv
}

// trust adds c through the admin socket.
func (td *dmDaemon) trust(t *testing.T, c *dmCert, req api.CertificatesPost) {
	t.Helper()
	req.Certificate = c.B64()
	td.must(t, 201, nil, "POST", "/1.0/certificates", req)
}

func (td *dmDaemon) lastSeq(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	defer cancel()
	seq, err := td.d.Store().LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// types returns the event types stored after sequence after.
func (td *dmDaemon) types(t *testing.T, after uint64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	defer cancel()
	recs, err := td.d.Store().Read(ctx, after+1, td.lastSeq(t))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, r := range recs {
		e, err := events.Decode(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Type)
	}
	return out
}

// dmWait polls cond until it holds, at most dmTimeout. The daemon moves
// its listener in the background, after the write that asked for it.
func dmWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(dmTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// dmFreePort returns a loopback address nobody listens on right now.
func dmFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestDaemonFiles checks what the first start writes: the server key pair
// (ECDSA P-384, serverAuth, loopback SANs, ten years, key 0600), the unix
// socket (0660), and that the certificate served is that one.
func TestDaemonFiles(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	td := dmStart(t, dmShortDir(t), clock)
	now := clock.Now()

	crtPEM, err := os.ReadFile(filepath.Join(td.dir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(crtPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("server.crt is not a PEM certificate")
	}
	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := crt.PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P384() {
		t.Errorf("server key is %T, want ECDSA P-384", crt.PublicKey)
	}
	if !cmp.Equal(crt.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("EKU %v, want serverAuth", crt.ExtKeyUsage)
	}
	var ips []string
	for _, ip := range crt.IPAddresses {
		ips = append(ips, ip.String())
	}
	for _, want := range []string{"127.0.0.1", "::1"} {
		if !slices.Contains(ips, want) {
			t.Errorf("SANs %v lack %s", ips, want)
		}
	}
	if host, _ := os.Hostname(); host != "" && !slices.Contains(crt.DNSNames, host) {
		t.Errorf("DNS SANs %v lack the host name %s", crt.DNSNames, host)
	}
	if err := crt.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("not valid for 127.0.0.1: %v", err)
	}
	if got, want := crt.NotAfter.Sub(now), 10*365*24*time.Hour; got < want-time.Hour || got > want+time.Hour {
		t.Errorf("valid for %v from now, want ten years", got)
	}
	if crt.NotBefore.After(now) {
		t.Errorf("not valid yet at start: notBefore %v, now %v", crt.NotBefore, now)
	}
	sum := sha256.Sum256(crt.Raw)
	if fp := hex.EncodeToString(sum[:]); fp != td.d.Fingerprint() {
		t.Errorf("Fingerprint() %s, server.crt %s", td.d.Fingerprint(), fp)
	}

	for _, tc := range []struct {
		name string
		path string
		mode fs.FileMode
		typ  fs.FileMode
	}{
		{name: "ok/server key", path: "server.key", mode: 0o600},
		{name: "ok/unix socket", path: "unix.socket", mode: 0o660, typ: fs.ModeSocket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := os.Stat(filepath.Join(td.dir, tc.path))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.mode || st.Mode().Type() != tc.typ {
				t.Errorf("mode %v, want %v%v", st.Mode(), tc.typ, tc.mode)
			}
		})
	}
	keyPEM, err := os.ReadFile(filepath.Join(td.dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(crtPEM, keyPEM); err != nil {
		t.Errorf("server.crt and server.key do not match: %v", err)
	}

	// The certificate served is server.crt, and /1.0 says so.
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{})
	c := td.client(t, admin)
	conn, err := tls.Dial("tcp", td.d.HTTPSAddr(), td.tlsConfig(t, nil, tls.VersionTLS13, 0))
	if err != nil {
		t.Fatal(err)
	}
	served := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if !served.Equal(crt) {
		t.Errorf("served certificate is not server.crt")
	}
	srv := td.server(t, c)
	if srv.Environment == nil || srv.Environment.Certificate != string(crtPEM) ||
		srv.Environment.CertificateFingerprint != td.d.Fingerprint() {
		t.Errorf("environment certificate %+v", srv.Environment)
	}
	if !cmp.Equal(srv.Environment.Addresses, []string{td.d.HTTPSAddr()}) {
		t.Errorf("addresses %v, want [%s]", srv.Environment.Addresses, td.d.HTTPSAddr())
	}
	if srv.AuthUserMethod != "tls" || srv.AuthUserName != admin.FP {
		t.Errorf("auth user %s/%s", srv.AuthUserMethod, srv.AuthUserName)
	}
}

// TestDaemonUnixSocket checks the socket is the local admin, named after
// the connecting user.
func TestDaemonUnixSocket(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock())
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	srv := td.server(t, nil)
	if srv.Auth != "trusted" || srv.AuthUserMethod != "unix" || srv.AuthUserName != me.Username {
		t.Errorf("over the socket: auth %q method %q name %q, want trusted unix %q", srv.Auth, srv.AuthUserMethod, srv.AuthUserName, me.Username)
	}
	if srv.Config["core.https_address"] != "127.0.0.1:0" {
		t.Errorf("config %v", srv.Config)
	}
	// The local admin may do what only admins may.
	td.must(t, 200, nil, "PATCH", "/1.0", `{"config":{"user.x":"1"}}`)
	td.must(t, 200, nil, "GET", "/1.0/certificates", nil)
}

// TestDaemonTLSVersions checks the HTTPS listener's floor: TLS 1.3 only by
// default, TLS 1.2 too with InsecureTLS.
func TestDaemonTLSVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		insecure bool
		version  uint16
		wantOK   bool
	}{
		{name: "ok/tls 1.3", version: tls.VersionTLS13, wantOK: true},
		{name: "fail/tls 1.2", version: tls.VersionTLS12},
		{name: "fail/tls 1.1", version: tls.VersionTLS11},
		{name: "ok/tls 1.2 when insecure", insecure: true, version: tls.VersionTLS12, wantOK: true},
		{name: "ok/tls 1.3 when insecure", insecure: true, version: tls.VersionTLS13, wantOK: true},
		{name: "fail/tls 1.1 when insecure", insecure: true, version: tls.VersionTLS11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			td := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) { c.InsecureTLS = tc.insecure })
			cfg := td.tlsConfig(t, td.cert(t, "v"), tc.version, tc.version)
			hc := &http.Client{Timeout: dmTimeout, Transport: &http.Transport{TLSClientConfig: cfg}}
			defer hc.CloseIdleConnections()
			rep, err := dmSend(hc, "GET", "https://"+td.d.HTTPSAddr()+"/1.0", nil)
			if !tc.wantOK {
				if err == nil {
					t.Fatalf("TLS version %x accepted: %s", tc.version, rep)
				}
				if !strings.Contains(err.Error(), "tls: ") {
					t.Errorf("refused, but not by TLS: %v", err)
				}
				return
			}
			if err != nil || rep.Code != 200 {
				t.Fatalf("TLS version %x refused: %v %s", tc.version, err, rep)
			}
		})
	}
}

// TestDaemonRestart closes a daemon and starts another on the same data
// directory: the trust store, the configuration and the server certificate
// come back from the stream and the files, and nothing is appended twice.
func TestDaemonRestart(t *testing.T) {
	t.Parallel()
	dir, clock := dmShortDir(t), newTestClock()
	td := dmStart(t, dir, clock)
	admin, restricted := td.cert(t, "admin"), td.cert(t, "restricted")
	td.trust(t, admin, api.CertificatesPost{Name: "admin"})
	td.trust(t, restricted, api.CertificatesPost{Name: "limited", Restricted: true, Projects: []string{"p1"}})
	td.must(t, 200, td.client(t, admin), "PATCH", "/1.0", `{"config":{"user.kept":"yes"}}`)
	var want []api.Certificate
	if err := json.Unmarshal(td.must(t, 200, nil, "GET", "/1.0/certificates?recursion=1", nil).Env.Metadata, &want); err != nil {
		t.Fatal(err)
	}
	seq, fp := td.lastSeq(t), td.d.Fingerprint()
	if err := td.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := td.d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unix.socket")); err == nil {
		// A stale socket file is fine (the next start replaces it), but
		// nobody may answer on it.
		if c, err := net.Dial("unix", filepath.Join(dir, "unix.socket")); err == nil {
			c.Close()
			t.Errorf("the unix socket still answers after Close")
		}
	}

	for round := range 2 {
		td2 := dmStart(t, dir, clock)
		if got := td2.lastSeq(t); got != seq {
			t.Errorf("round %d: stream at %d after restart, want %d (nothing appended by starting)", round, got, seq)
		}
		if td2.d.Model().Seq() != seq {
			t.Errorf("round %d: model at %d, want %d", round, td2.d.Model().Seq(), seq)
		}
		if td2.d.Fingerprint() != fp {
			t.Errorf("round %d: server certificate changed", round)
		}
		var got []api.Certificate
		if err := json.Unmarshal(td2.must(t, 200, nil, "GET", "/1.0/certificates?recursion=1", nil).Env.Metadata, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("round %d: trust store after restart (-want +got):\n%s", round, diff)
		}
		srv := td2.server(t, td2.client(t, admin))
		if srv.Auth != "trusted" || srv.Config["user.kept"] != "yes" {
			t.Errorf("round %d: admin's view after restart: auth %q config %v", round, srv.Auth, srv.Config)
		}
		if srv := td2.server(t, td2.client(t, restricted)); srv.Auth != "trusted" || srv.Config["user.kept"] != "" {
			t.Errorf("round %d: restricted view after restart: %+v", round, srv)
		}
		if err := td2.d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDaemonRebind changes core.https_address through the API: the
// listener moves to the new address, the old one stops answering, and an
// address that cannot be bound is refused (400, nothing recorded) and
// leaves the listener where it was.
func TestDaemonRebind(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock())
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{})
	old := td.d.HTTPSAddr()
	// GET /1.0 remembers the listen addresses; a move must replace them.
	if srv := td.server(t, td.client(t, admin)); !cmp.Equal(srv.Environment.Addresses, []string{old}) {
		t.Errorf("addresses before the move: %v, want [%s]", srv.Environment.Addresses, old)
	}

	next := dmFreePort(t)
	before := td.lastSeq(t)
	td.must(t, 200, td.client(t, admin), "PATCH", "/1.0", map[string]any{"config": map[string]string{"core.https_address": next}})
	if diff := cmp.Diff([]string{"trustlog.config.member.changed.v1"}, td.types(t, before)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	dmWait(t, "the listener to move to "+next, func() bool { return td.d.HTTPSAddr() == next })
	srv := td.server(t, td.client(t, admin))
	if srv.Auth != "trusted" || !cmp.Equal(srv.Environment.Addresses, []string{next}) || srv.Config["core.https_address"] != next {
		t.Errorf("at the new address: auth %q addresses %v config %v", srv.Auth, srv.Environment.Addresses, srv.Config)
	}
	if c, err := net.DialTimeout("tcp", old, dmTimeout); err == nil {
		c.Close()
		t.Errorf("the old address %s still accepts connections", old)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the old address %s: %v, want connection refused", old, err)
	}

	// Addresses this machine cannot listen on are refused before anything
	// is recorded, with the reason; the listener stays where it is.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	before = td.lastSeq(t)
	for _, tc := range []struct{ name, value, err string }{
		{name: "fail/malformed", value: "not a host:x", err: "Invalid config: core.https_address: invalid host"},
		{name: "fail/host name that does not resolve", value: "notanaddress", err: `Invalid config: core.https_address: cannot listen on notanaddress:8443: host "notanaddress" does not resolve`},
		{name: "fail/port in use", value: busy.Addr().String(), err: "Invalid config: core.https_address: cannot listen on " + busy.Addr().String() + " on this machine: bind: address already in use"},
		{name: "fail/address not on this machine", value: "192.0.2.1:8443", err: "Invalid config: core.https_address: cannot listen on 192.0.2.1:8443 on this machine: bind: cannot assign requested address"},
	} {
		rep := td.call(t, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"core.https_address": tc.value}})
		if rep.Code != 400 || !strings.HasPrefix(rep.Env.Error, tc.err) {
			t.Errorf("%s: %s, want 400 %q", tc.name, rep, tc.err)
		}
	}
	if got := td.lastSeq(t); got != before {
		t.Errorf("refused changes appended %d events", got-before)
	}
	if got := td.d.HTTPSAddr(); got != next {
		t.Errorf("listener at %s after refused moves, want %s", got, next)
	}
	td.must(t, 200, td.client(t, admin), "GET", "/1.0/certificates", nil)

	// The address already served, written another way, moves nothing.
	host, port, _ := net.SplitHostPort(next)
	td.must(t, 200, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"core.https_address": "[" + host + "]:" + port}})

	// And back to a free port.
	again := dmFreePort(t)
	td.must(t, 200, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"core.https_address": again}})
	dmWait(t, "the listener to move to "+again, func() bool { return td.d.HTTPSAddr() == again })
	td.must(t, 200, td.client(t, admin), "GET", "/1.0/certificates", nil)
	if srv := td.server(t, td.client(t, admin)); !cmp.Equal(srv.Environment.Addresses, []string{again}) {
		t.Errorf("addresses after the second move: %v, want [%s]", srv.Environment.Addresses, again)
	}
	if strings.Contains(td.log.String(), "HTTPS listener not moved") {
		t.Errorf("a move failed:\n%s", td.log)
	}
}

// TestDaemonConcurrentAdds races admins adding certificates over both
// listeners: different certificates all land; the same certificate lands
// exactly once, the other attempt getting 409.
func TestDaemonConcurrentAdds(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock())
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{})
	tlsURL, unixURL := "https://"+td.d.HTTPSAddr()+"/1.0/certificates", "http://unix.socket/1.0/certificates"
	for round := range 4 {
		a, b, same := td.cert(t, "a"), td.cert(t, "b"), td.cert(t, "same")
		before := td.lastSeq(t)
		clients := []*http.Client{td.client(t, admin), td.admin}
		urls := []string{tlsURL, unixURL}
		type result struct {
			rep dmReply
			err error
		}
		results := make([]result, 4)
		var wg sync.WaitGroup
		for i, body := range []api.CertificatesPost{{Certificate: a.B64()}, {Certificate: b.B64()}, {Certificate: same.B64()}, {Certificate: same.B64()}} {
			wg.Go(func() {
				rep, err := dmSend(clients[i%2], "POST", urls[i%2], body)
				results[i] = result{rep, err}
			})
		}
		wg.Wait()
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("round %d: request %d: %v", round, i, r.err)
			}
		}
		if results[0].rep.Code != 201 || results[1].rep.Code != 201 {
			t.Errorf("round %d: different certificates: %s and %s, want 201 twice", round, results[0].rep, results[1].rep)
		}
		codes := []int{results[2].rep.Code, results[3].rep.Code}
		slices.Sort(codes)
		if !cmp.Equal(codes, []int{201, 409}) {
			t.Errorf("round %d: the same certificate twice: %s and %s, want one 201 and one 409", round, results[2].rep, results[3].rep)
		}
		for _, r := range results[2:] {
			if r.rep.Code == 409 && r.rep.Env.Error != "Certificate already in trust store" {
				t.Errorf("round %d: conflict message %q", round, r.rep.Env.Error)
			}
		}
		if got := td.types(t, before); len(got) != 3 {
			t.Errorf("round %d: %d events, want 3: %v", round, len(got), got)
		}
	}
	if n := td.d.Model().NumCertificates(); n != 1+4*3 {
		t.Errorf("%d entries, want %d", n, 1+4*3)
	}
}

// TestDaemonValidityClock moves the daemon's injected clock past a trusted
// certificate's dates: it stops being trusted, without any event.
func TestDaemonValidityClock(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	td := dmStart(t, dmShortDir(t), clock)
	now := clock.Now()
	c := newDMCert(t, "dated", now.Add(-time.Hour), now.Add(time.Hour))
	td.trust(t, c, api.CertificatesPost{})
	hc := td.client(t, c)
	seq := td.lastSeq(t)
	for _, tc := range []struct {
		name        string
		at          time.Time
		wantTrusted bool
	}{
		{name: "ok/in date", at: now, wantTrusted: true},
		{name: "fail/expired", at: now.Add(2 * time.Hour)},
		{name: "fail/not yet valid", at: now.Add(-2 * time.Hour)},
		{name: "ok/in date again", at: now.Add(30 * time.Minute), wantTrusted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock.Set(tc.at)
			rep := td.call(t, hc, "GET", "/1.0/certificates", nil)
			srv := td.server(t, hc)
			if tc.wantTrusted != (rep.Code == 200) || tc.wantTrusted != (srv.Auth == "trusted") {
				t.Errorf("at %v: list %s, auth %q; want trusted %v", tc.at, rep, srv.Auth, tc.wantTrusted)
			}
		})
	}
	if got := td.lastSeq(t); got != seq {
		t.Errorf("the clock moved the stream from %d to %d", seq, got)
	}
}

// TestDaemonRemovalIsImmediate deletes a client while its keep-alive
// connection is open: the very next request on it is untrusted.
func TestDaemonRemovalIsImmediate(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock())
	c := td.cert(t, "gone")
	td.trust(t, c, api.CertificatesPost{})
	hc := td.client(t, c)
	td.must(t, 200, hc, "GET", "/1.0/certificates", nil)
	td.must(t, 200, nil, "DELETE", "/1.0/certificates/"+c.FP, nil)
	rep := td.must(t, 403, hc, "GET", "/1.0/certificates", nil)
	if rep.Env.Error != "not authorized" || rep.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("refusal %s", rep)
	}
	if srv := td.server(t, hc); srv.Auth != "untrusted" {
		t.Errorf("auth %q right after removal", srv.Auth)
	}
}

// TestDaemonConfig covers Config.Validate and a start that cannot work.
func TestDaemonConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     daemon.Config
		wantErr string
	}{
		{name: "ok/dir only", cfg: daemon.Config{Dir: "/x"}},
		{name: "ok/external nats with credentials", cfg: daemon.Config{Dir: "/x", NATSURL: "nats://127.0.0.1:4222", NATSCreds: "/c"}},
		{name: "fail/no dir", cfg: daemon.Config{}, wantErr: "daemon: data directory is required"},
		{name: "fail/credentials without url", cfg: daemon.Config{Dir: "/x", NATSCreds: "/c"}, wantErr: "daemon: NATS credentials need an external NATS URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
	t.Run("fail/bad https address", func(t *testing.T) {
		t.Parallel()
		d, logs, err := dmTryStart(dmShortDir(t), newTestClock(), func(c *daemon.Config) { c.HTTPSAddress = "not a host:x" })
		if err == nil {
			d.Close()
			t.Fatal("started with a bad --https-address")
		}
		if !strings.Contains(err.Error(), "--https-address") {
			t.Errorf("error %v does not name the flag\n%s", err, logs)
		}
	})
}
