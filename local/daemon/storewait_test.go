package daemon_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestStartBoundedWithoutQuorum: an instance whose JetStream cluster has
// no quorum (two of three servers gone) does not hang at start: it fails
// once StoreWait has passed, saying what it waited for, even when the
// caller's context has no deadline (trustlogd's own has none).
func TestStartBoundedWithoutQuorum(t *testing.T) {
	t.Parallel()
	_, url := clusterWithoutQuorum(t)
	done := make(chan error, 1)
	go func() {
		d, err := daemon.Start(context.Background(), daemon.Config{Dir: dmShortDir(t), NATSURL: url, Replicas: 3,
			HTTPSAddress: "127.0.0.1:0", StoreWait: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			d.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the event stream did not answer") {
			t.Fatalf("Start without quorum = %v, want the event stream not answering", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Start without quorum still waiting after 60 s with a StoreWait of 2 s")
	}
}

// TestStartWaitsForQuorum: members restarting together see a cluster with
// no meta leader for a while ("temporarily unavailable"); an instance
// starting then waits for the quorum to come back instead of exiting.
func TestStartWaitsForQuorum(t *testing.T) {
	t.Parallel()
	c, url := clusterWithoutQuorum(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := dmShortDir(t)
	type started struct {
		d   *daemon.Daemon
		err error
	}
	done := make(chan started, 1)
	go func() {
		d, err := daemon.Start(ctx, daemon.Config{Dir: dir, NATSURL: url, Replicas: 3,
			HTTPSAddress: "127.0.0.1:0", StoreWait: time.Minute, Logger: slog.New(slog.DiscardHandler)})
		done <- started{d, err}
	}()
	time.Sleep(15 * time.Second) // past the server's "temporarily unavailable" answer
	c.Restart(1)
	c.Restart(2)
	s := <-done
	if s.err != nil {
		t.Fatalf("Start while the quorum comes back: %v", s.err)
	}
	s.d.Close()
}

// clusterWithoutQuorum starts a three-server JetStream cluster, lets a
// trustlogd create its stream there (as after any first start), then
// stops two of the servers. It returns the cluster and the URL of the
// server left.
func clusterWithoutQuorum(t *testing.T) (*natstest.Cluster, string) {
	t.Helper()
	c := natstest.RunCluster(t, 3)
	url := c.Servers[0].ClientURL()
	first, err := daemon.Start(context.Background(), daemon.Config{Dir: dmShortDir(t), NATSURL: url, Replicas: 3,
		HTTPSAddress: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	c.Stop(1)
	c.Stop(2)
	return c, url
}
