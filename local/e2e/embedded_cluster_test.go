package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// secretFile writes a cluster secret file (mode 0600) and returns its path
// and the secret.
func secretFile(t *testing.T) (string, string) {
	t.Helper()
	buf := make([]byte, 32)
	rand.Read(buf)
	secret := hex.EncodeToString(buf)
	path := filepath.Join(t.TempDir(), "cluster.secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

// TestEmbeddedCluster: three trustlogd instances cluster their embedded
// NATS servers (no separate NATS install) with an R3 stream, their routes
// authenticated by a shared secret; a change made through one is seen by
// the others, a member with another secret is not let in, and with one
// instance gone the other two keep accepting changes. The secret appears
// in no log.
func TestEmbeddedCluster(t *testing.T) {
	t.Parallel()
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	secretPath, secret := secretFile(t)
	ds := make([]*daemon.Daemon, 3)
	errs := make([]error, 3)
	logs := make([]*bytes.Buffer, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 3 {
		dir, err := os.MkdirTemp("", "tlc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		logs[i] = &bytes.Buffer{}
		wg.Go(func() {
			ds[i], errs[i] = daemon.Start(ctx, daemon.Config{Dir: dir, HTTPSAddress: "127.0.0.1:0", Replicas: 3,
				NATSName: fmt.Sprintf("t%d", i+1), NATSCluster: routes[i], NATSRoutes: strings.Join(routes, ","),
				NATSClusterSecretFile: secretPath,
				Logger:                slog.New(slog.NewTextHandler(&lockedWriter{w: logs[i]}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		d := ds[i]
		t.Cleanup(func() { d.Close() })
	}
	ss := []*server{newServer(t, ds[0], nil), newServer(t, ds[1], nil), newServer(t, ds[2], nil)}
	_, c := newCert(t, "", "clustered")
	ss[0].trust(t, c, "clustered")
	for i, d := range ds[1:] {
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if code, env := ss[i+1].call(t, "GET", "/1.0/certificates/"+fingerprintOf(c), nil); code != 200 {
			t.Errorf("instance %d does not see the change: %d %s", i+2, code, env.Error)
		}
	}
	// A fourth server with another secret cannot join: its routes are
	// refused, so it never sees the stream.
	otherPath, _ := secretFile(t)
	dir, err := os.MkdirTemp("", "tlc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	intruder, err := daemon.Start(octx, daemon.Config{Dir: dir, HTTPSAddress: "127.0.0.1:0", Replicas: 3,
		NATSName: "intruder", NATSCluster: freeAddr(t), NATSRoutes: strings.Join(routes, ","), NATSClusterSecretFile: otherPath,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ocancel()
	if err == nil {
		intruder.Close()
		t.Fatal("a member with another cluster secret started and reached the stream")
	}

	// One instance (and its NATS server) goes away: two of three keep the
	// R3 stream writable.
	ds[2].Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, env := ss[0].call(t, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"user.after": "loss"}})
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted 30 s after losing one member: %d %s", code, env.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := ds[1].Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ds[1].Model().ConfigValue("user.after") != "loss" {
		t.Error("the surviving instance did not see the write")
	}
	for i, l := range logs {
		d := ds[i]
		d.Close()
		if text := l.String(); strings.Contains(text, secret) {
			t.Errorf("instance %d logged the cluster secret", i+1)
		}
	}
}

// TestClusterSecretRequired: clustering without a usable secret file is
// refused before anything starts.
func TestClusterSecretRequired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte(strings.Repeat("x", 40)), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tooshort"), 0o600)
	good, _ := secretFile(t)
	route := freeAddr(t)
	for _, tc := range []struct {
		file, routes, want string
	}{
		{"", route, "needs --nats-cluster-secret-file"},
		{filepath.Join(dir, "missing"), route, "no such file"},
		{loose, route, "readable by others"},
		{short, route, "shorter than 32"},
		{good, "tls://" + route, "give host:port, nats://host:port or nats-route://host:port"},
		{good, "nats://user:pw@" + route, "no credentials in a route"},
		{good, "user:pw@" + route, "no credentials in a route"},
		{good, "nats://" + route + "/path", "nothing after it"},
		{good, "nats://:6222", "want host:port with a host"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", Replicas: 3,
			NATSName: "t1", NATSCluster: route, NATSRoutes: tc.routes, NATSClusterSecretFile: tc.file,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		cancel()
		if err == nil {
			d.Close()
			t.Errorf("secret file %q, routes %q: started", tc.file, tc.routes)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("secret file %q, routes %q: error %q, want it to say %q", tc.file, tc.routes, err, tc.want)
		}
	}
}

// TestEmbeddedClusterOwnAddresses: three clustered instances started as
// docs/cluster.md shows, each with its own --https-address (here three
// loopback ports; in production one address per host), each serve on
// their own address and keep it: the address is member-local, not one
// shared value they all follow. A member restarted without the flag
// comes back on its own address, and GET /1.0 shows each instance its
// own core.https_address. The routes are written the three ways NATS
// users write them (host:port, nats://, nats-route://).
func TestEmbeddedClusterOwnAddresses(t *testing.T) {
	t.Parallel()
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	routeFlag := strings.Join([]string{"nats://" + routes[0], "nats-route://" + routes[1], routes[2]}, ",")
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	secretPath, _ := secretFile(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dirs := make([]string, 3)
	for i := range dirs {
		dir, err := os.MkdirTemp("", "tlc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		dirs[i] = dir
	}
	cfg := func(i int, https string) daemon.Config {
		return daemon.Config{Dir: dirs[i], HTTPSAddress: https, Replicas: 3,
			NATSName: fmt.Sprintf("t%d", i+1), NATSCluster: routes[i], NATSRoutes: routeFlag,
			NATSClusterSecretFile: secretPath, ACMEHTTPAddress: "-",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	ds := make([]*daemon.Daemon, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range ds {
		wg.Go(func() { ds[i], errs[i] = daemon.Start(ctx, cfg(i, addrs[i])) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i+1, err)
		}
		d := ds[i]
		t.Cleanup(func() { d.Close() })
	}
	pair, c := newCert(t, "", "member-check")
	if code, env := do(t, unixClient(ds[0].UnixSocket()), "POST", "http://unix.socket/1.0/certificates",
		api.CertificatesPost{Name: "member-check", Type: "client", Certificate: base64Of(c)}); code != 201 {
		t.Fatalf("trust: %d %s", code, env.Error)
	}
	client := tlsClient(&pair)
	defer client.CloseIdleConnections()

	// check waits until every instance has applied the whole log, then
	// asks each over HTTPS at its own address: the answer must come from
	// that instance (its server certificate) and show that address.
	check := func(when string) {
		t.Helper()
		for i, d := range ds {
			if err := d.Sync(ctx); err != nil {
				t.Fatalf("%s: instance %d: %v", when, i+1, err)
			}
		}
		for i, d := range ds {
			if got := d.HTTPSAddr(); got != addrs[i] {
				t.Errorf("%s: instance %d listens on %s, want its own %s", when, i+1, got, addrs[i])
				continue
			}
			code, env := do(t, client, "GET", "https://"+addrs[i]+"/1.0", nil)
			if code != 200 {
				t.Errorf("%s: GET /1.0 at %s: %d %s", when, addrs[i], code, env.Error)
				continue
			}
			var srv api.Server
			if err := json.Unmarshal(env.Metadata, &srv); err != nil {
				t.Fatal(err)
			}
			if srv.Auth != "trusted" || srv.Environment == nil {
				t.Errorf("%s: at %s: auth %q", when, addrs[i], srv.Auth)
				continue
			}
			if srv.Environment.CertificateFingerprint != d.Fingerprint() {
				t.Errorf("%s: %s is served by another instance than %d", when, addrs[i], i+1)
			}
			if got := srv.Config["core.https_address"]; got != addrs[i] {
				t.Errorf("%s: instance %d shows core.https_address %q, want %q", when, i+1, got, addrs[i])
			}
		}
	}
	check("after starting together")
	// Give the followers time to act on each other's events, then look
	// again: nobody moved.
	time.Sleep(500 * time.Millisecond)
	check("a moment later")

	// Instance 2 restarts without --https-address: its address is in the
	// log, as its own.
	ds[1].Close()
	var err error
	if ds[1], err = daemon.Start(ctx, cfg(1, "")); err != nil {
		t.Fatalf("restart instance 2: %v", err)
	}
	t.Cleanup(func() { ds[1].Close() })
	check("after instance 2 restarted")
}

func base64Of(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }
