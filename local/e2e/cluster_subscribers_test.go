package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events/subscribe"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestEmbeddedClusterSubscribers: three clustered trustlogd instances with
// --nats-listen keep the subscribers' mirror replicated like the stream; a
// subscriber of another member than the one written to reads every event,
// numbered as the stream numbers them.
func TestEmbeddedClusterSubscribers(t *testing.T) {
	t.Parallel()
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	secretPath, _ := secretFile(t)
	ds, dirs, errs := make([]*daemon.Daemon, 3), make([]string, 3), make([]error, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 3 {
		dir, err := os.MkdirTemp("", "tlc")
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = dir
		t.Cleanup(func() { os.RemoveAll(dir) })
		wg.Go(func() {
			ds[i], errs[i] = daemon.Start(ctx, daemon.Config{Dir: dir, HTTPSAddress: "127.0.0.1:0", Replicas: 3,
				NATSListen: "127.0.0.1:0", NATSName: fmt.Sprintf("s%d", i+1), NATSCluster: routes[i],
				NATSRoutes: strings.Join(routes, ","), NATSClusterSecretFile: secretPath,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i+1, err)
		}
		d := ds[i]
		t.Cleanup(func() { d.Close() })
	}
	s := newServer(t, ds[0], nil)
	_, c := newCert(t, "", "clustered")
	s.trust(t, c, "clustered")
	raw, err := os.ReadFile(filepath.Join(dirs[1], daemon.SubscriberURLFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	n := s.lastSeq(t)
	evs := collect(t, nc, subscribe.Options{Durable: "cluster"}, int(n))
	if len(evs) != int(n) || evs[n-1].Seq != n {
		t.Fatalf("the subscriber of the second member read %d events; want %d, the last numbered %d", len(evs), n, n)
	}
	if fps := trustedFingerprints(evs); len(fps) != 1 || fps[0] != fingerprintOf(c) {
		t.Errorf("the subscriber saw trusted %v", fps)
	}
}
