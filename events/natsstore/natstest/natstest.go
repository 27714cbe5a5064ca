// Package natstest starts an embedded NATS server with JetStream for tests
// and connects to it in process.
//
// Each call gives a fresh server with its own store directory, shut down
// when the test ends, so tests that use it can run in parallel. Only tests
// import this package: it links nats-server and testing.
package natstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events"
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

// OpenStoreOn connects to the running server s and opens the TRUSTLOG
// store on it.
func OpenStoreOn(t testing.TB, s *server.Server) *natsstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	st, err := natsstore.Open(ctx, Connect(t, s), natsstore.Config{})
	if err != nil {
		t.Fatalf("natstest: open store: %v", err)
	}
	return st
}

// OpenStoreTCP opens the TRUSTLOG store of the running server s over a TCP
// connection to its client port, as a Lambda or a clustered instance
// reaches NATS. The connection is closed when the test ends.
func OpenStoreTCP(t testing.TB, s *server.Server) *natsstore.Store {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("natstest: connect over TCP: %v", err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	st, err := natsstore.Open(ctx, nc, natsstore.Config{})
	if err != nil {
		t.Fatalf("natstest: open store: %v", err)
	}
	return st
}

// Fill appends n events made by mk, dated at, in atomic batches of 1000,
// and returns the bytes stored. It is for benchmarks that need a long
// stream.
func Fill(t testing.TB, st *natsstore.Store, n int, at time.Time, mk func(i int) events.Payload) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var seq uint64
	var prev string
	var total int64
	for done := 0; done < n; {
		envs := make([]events.Envelope, 0, 1000)
		for i := done; i < min(done+1000, n); i++ {
			env, err := events.New(fmt.Sprintf("ev-%d", i), "urn:trustlog:bench", at, events.Actor{Name: "bench", Method: "system"}, mk(i))
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, env)
		}
		last, err := st.Append(ctx, seq, prev, envs...)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := st.Read(ctx, last, last)
		if err != nil {
			t.Fatal(err)
		}
		seq, prev = last, events.Hash(recs[0].Raw)
		total += int64(len(recs[0].Raw)) * int64(len(envs))
		done += len(envs)
	}
	return total
}

// TokenChurn makes event i of a token churn for Fill: tokens issued (even
// i, expiring an hour after at) and redeemed (odd i), ≈ 0.6 KB each.
func TokenChurn(at time.Time) func(i int) events.Payload {
	return func(i int) events.Payload {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i/2, i/2)
		if i%2 == 1 {
			return &events.TokenRedeemed{ID: id, Name: "client", Fingerprint: id}
		}
		sum := sha256.Sum256([]byte(id))
		return &events.TokenIssued{ID: id, Name: "client", Type: events.CertificateTypeClient, Projects: []string{},
			SecretHash: hex.EncodeToString(sum[:]), SealedSecret: "c2VhbGVk", Fingerprint: hex.EncodeToString(sum[:]),
			Addresses: []string{"127.0.0.1:8443"}, ExpiresAt: at.Add(time.Hour)}
	}
}

// Cluster is a JetStream cluster of embedded servers on loopback.
type Cluster struct {
	Servers []*server.Server
	opts    []*server.Options
	t       testing.TB
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// RunCluster starts n servers forming one JetStream cluster (client and
// route ports on 127.0.0.1) and waits until it has a meta leader. Every
// server is shut down when the test ends.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	routes := make([]string, n)
	routePorts := make([]int, n)
	for i := range n {
		routePorts[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i])
	}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "trustlog-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.opts = append(c.opts, opts)
		c.Servers = append(c.Servers, nil)
		c.start(i)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !c.hasLeader() {
		if time.Now().After(deadline) {
			t.Fatal("natstest: the cluster elected no JetStream meta leader within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatalf("natstest: new server: %v", err)
	}
	go s.Start()
	c.t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(readyTimeout) {
		c.t.Fatalf("natstest: server %d not ready within %v", i, readyTimeout)
	}
	// Keep the client port across restarts.
	c.opts[i].Port = s.Addr().(*net.TCPAddr).Port
	c.Servers[i] = s
}

func (c *Cluster) hasLeader() bool {
	for _, s := range c.Servers {
		if s != nil && s.Running() && s.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// URL returns the client URLs of every server, comma-separated.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, o := range c.opts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return strings.Join(urls, ",")
}

// StreamLeader returns the index of the server leading stream, or -1.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.Servers {
		if s != nil && s.Running() && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// Stop shuts server i down (its store stays, for Restart).
func (c *Cluster) Stop(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// Restart starts server i again on its store and ports.
func (c *Cluster) Restart(i int) { c.start(i) }
