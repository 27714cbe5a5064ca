package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
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

// TestEmbeddedCluster: three trustlogd instances cluster their embedded
// NATS servers (no separate NATS install) with an R3 stream; a change made
// through one is seen by the others, and with one instance gone the other
// two keep accepting changes.
func TestEmbeddedCluster(t *testing.T) {
	t.Parallel()
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	ds := make([]*daemon.Daemon, 3)
	errs := make([]error, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 3 {
		dir, err := os.MkdirTemp("", "tlc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		wg.Go(func() {
			ds[i], errs[i] = daemon.Start(ctx, daemon.Config{Dir: dir, HTTPSAddress: "127.0.0.1:0", Replicas: 3,
				NATSName: fmt.Sprintf("t%d", i+1), NATSCluster: routes[i], NATSRoutes: strings.Join(routes, ","),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
}
