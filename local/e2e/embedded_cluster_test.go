package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
