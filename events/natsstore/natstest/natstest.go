// Package natstest starts an embedded NATS server with JetStream for tests
// and connects to it in process.
//
// Each call gives a fresh server with its own store directory, shut down
// when the test ends, so tests that use it can run in parallel. Only tests
// import this package: it links nats-server and testing.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events/natsstore"
)

// readyTimeout bounds how long RunServer waits for the server to accept
// connections.
const readyTimeout = 10 * time.Second

// RunServer starts a nats-server with JetStream on, file storage in
// t.TempDir(), listening on a random port on 127.0.0.1 only (its
// ClientURL works for TCP clients; Connect avoids TCP altogether). The
// server is shut down, and waited for, when the test ends. It fails the
// test if the server does not start.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	opts := &server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(readyTimeout) {
		t.Fatalf("natstest: server not ready within %v", readyTimeout)
	}
	return s
}

// Connect returns a client connection to s that bypasses the network
// (nats.InProcessServer). It is closed when the test ends, before the
// server shuts down.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// OpenStore starts a server, connects to it and opens a natsstore.Store
// on it with the zero Config (stream TRUSTLOG). It returns the server too,
// for tests that need more connections or stream details.
func OpenStore(t testing.TB) (*natsstore.Store, *server.Server) {
	t.Helper()
	s := RunServer(t)
	nc := Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	st, err := natsstore.Open(ctx, nc, natsstore.Config{})
	if err != nil {
		t.Fatalf("natstest: open store: %v", err)
	}
	return st, s
}
