//go:build unix

package daemon_test

// BenchmarkGet10 measures the request path of the foundation issue: an
// authenticated GET /1.0 over keep-alive mutual TLS against trustlogd with
// 100,000 trusted certificates in its model, beside the same TLS server
// setup answering with a no-op handler, and the in-process parts (handler,
// authentication, fingerprint, lookup) without the network. Method and
// results: docs/benchmarks.md.
//
// Server CPU is measured by running the HTTPS client in a second process
// (this test binary again, see TestGet10LoadGenerator), so that the
// benchmark process's CPU time belongs to the server alone.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/local/daemon"
	"github.com/trustlog/trustlog/projections"
)

const (
	// get10Trusted is the size of the trust store under test.
	get10Trusted = 100_000
	// get10Conns is the number of concurrent clients, each on its own
	// keep-alive connection, as in the shared baselines.
	get10Conns = 64
	// get10FillBatch is the number of events per atomic append while filling.
	get10FillBatch = 250
	// get10Timeout bounds the setup and every single request.
	get10Timeout = 5 * time.Minute
	// get10LoadgenEnv names the load generator's configuration file in the
	// environment of the client process.
	get10LoadgenEnv = "TRUSTLOG_BENCH_LOADGEN"
)

// BenchmarkGet10 compares GET /1.0 against trustlogd holding 100,000
// trusted certificates with the same TLS server and a no-op handler, and
// breaks the server's own work down without the network.
//
// The setup (≈ 10 s) runs once and is shared by every sub-benchmark and
// every -count round: the body of a benchmark with sub-benchmarks is not
// repeated.
func BenchmarkGet10(b *testing.B) {
	fx := newGet10Fixture(b, get10Trusted)
	daemonURL := "https://" + fx.d.HTTPSAddr() + "/1.0"
	noopURL := fx.noopURL + "/1.0"

	// The client runs in its own process: server-cpu-µs/op is the CPU of
	// this process (trustlogd, or the no-op server) per request.
	b.Run("client-process/trustlogd", func(b *testing.B) { get10ClientProcess(b, fx, daemonURL) })
	b.Run("client-process/noop", func(b *testing.B) { get10ClientProcess(b, fx, noopURL) })
	// The client runs here, with RunParallel: process-cpu-µs/op counts
	// both ends of the connection.
	b.Run("in-process/trustlogd", func(b *testing.B) { get10InProcess(b, fx, daemonURL) })
	b.Run("in-process/noop", func(b *testing.B) { get10InProcess(b, fx, noopURL) })

	// Without the network: the API handler behind the gate, called directly
	// with the TLS state a connection would carry.
	b.Run("no-network/serve-1.0", func(b *testing.B) { get10Serve(b, fx, "/1.0") })
	b.Run("no-network/serve-root", func(b *testing.B) { get10Serve(b, fx, "/") })
	b.Run("no-network/serve-1.0-parallel", func(b *testing.B) { get10ServeParallel(b, fx, "/1.0") })
	auth := authn.New(get10Model{fx.d}, nil)
	req := fx.peerRequest("/1.0")
	b.Run("no-network/authenticate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !auth.Authenticate(req).Trusted {
				b.Fatal("the bench client is not trusted")
			}
		}
	})
	b.Run("no-network/authenticate-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !auth.Authenticate(req).Trusted {
					b.Error("the bench client is not trusted")
					return
				}
			}
		})
	})
	b.Run("no-network/fingerprint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			projections.Fingerprint(fx.clientX.Raw)
		}
	})
	b.Run("no-network/lookup", func(b *testing.B) {
		m := fx.d.Model()
		sum := projections.Fingerprint(fx.clientX.Raw)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := m.Certificate(sum); !ok {
				b.Fatal("the bench client is not in the model")
			}
		}
	})
}

// get10Fixture is a trustlogd with a full trust store, a no-op server with
// the same TLS setup, and a trusted client certificate.
type get10Fixture struct {
	n        int // filler certificates trusted
	d        *daemon.Daemon
	dir      string
	client   tls.Certificate // ECDSA P-384, trusted
	clientX  *x509.Certificate
	keyPEM   []byte
	rootPEM  []byte // the daemon's server certificate, served by both servers
	roots    *x509.CertPool
	noopURL  string
	mu       sync.Mutex
	clients  map[string]*http.Client
	loadgens map[string]*loadgen
}

// newGet10Fixture starts trustlogd trusting n filler certificates and the
// bench client.
func newGet10Fixture(b *testing.B, n int) *get10Fixture {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), get10Timeout)
	defer cancel()
	fx := &get10Fixture{n: n, dir: b.TempDir(), clients: map[string]*http.Client{}, loadgens: map[string]*loadgen{}}
	d, err := daemon.Start(ctx, daemon.Config{
		Dir:          fx.dir,
		HTTPSAddress: "127.0.0.1:0",
		Logger:       slog.New(slog.DiscardHandler),
		// No periodic snapshot: storing one of a 1M-entry store takes
		// seconds of CPU, which would land in whichever round (of either
		// server: they share this process) runs a minute after the fill.
		// Snapshots are measured by their own benchmarks.
		SnapshotInterval: 24 * time.Hour,
	})
	if err != nil {
		b.Fatalf("start trustlogd: %v", err)
	}
	b.Cleanup(func() { d.Close() })
	fx.d = d
	fx.client, fx.clientX, fx.keyPEM = newGet10ClientCert(b)

	heapEmpty := get10LiveHeap()
	start := time.Now()
	get10Fill(b, ctx, d, n, fx.clientX)
	filled := time.Since(start)
	heapFull := get10LiveHeap()
	if got, want := d.Model().NumCertificates(), n+1; got != want {
		b.Fatalf("trust store holds %d certificates, want %d", got, want)
	}

	fx.rootPEM, err = os.ReadFile(filepath.Join(fx.dir, "server.crt"))
	if err != nil {
		b.Fatal(err)
	}
	fx.roots = x509.NewCertPool()
	if !fx.roots.AppendCertsFromPEM(fx.rootPEM) {
		b.Fatal("server.crt holds no certificate")
	}
	fx.noopURL = get10NoopServer(b, fx.dir)

	c := fx.httpClient("check")
	if got := get10AuthOf(b, c, "https://"+d.HTTPSAddr()+"/1.0"); got != "trusted" {
		b.Fatalf("GET /1.0 says auth %q, want trusted", got)
	}
	if err := get10Once(c, fx.noopURL+"/1.0"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fx.close)
	b.Logf("setup: %d certificates trusted in %v; live heap %d MiB before, %d MiB after (model and JetStream caches)",
		n+1, filled.Round(time.Millisecond), heapEmpty>>20, heapFull>>20)
	return fx
}

// close stops the load generators and the clients' idle connections.
func (fx *get10Fixture) close() {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	for _, lg := range fx.loadgens {
		lg.close()
	}
	for _, c := range fx.clients {
		c.CloseIdleConnections()
	}
}

// httpClient returns the fixture's keep-alive client for key, so that its
// connections survive from one round of a benchmark to the next.
func (fx *get10Fixture) httpClient(key string) *http.Client {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	if c, ok := fx.clients[key]; ok {
		return c
	}
	c := newGet10Client(fx.client, fx.roots, get10Conns)
	fx.clients[key] = c
	return c
}

// peerRequest returns a request for path as it reaches the handler from a
// TLS 1.3 connection on which the bench client presented its certificate.
func (fx *get10Fixture) peerRequest(path string) *http.Request {
	r := httptest.NewRequest("GET", "https://"+fx.d.HTTPSAddr()+path, nil)
	r.RemoteAddr = "127.0.0.1:50000"
	r.TLS.Version = tls.VersionTLS13
	r.TLS.PeerCertificates = []*x509.Certificate{fx.clientX}
	return r
}

// get10Model is the daemon's live read model, as the API sees it.
type get10Model struct{ d *daemon.Daemon }

func (m get10Model) Snapshot() *projections.Model { return m.d.Model() }

// get10Trust is the event trusting the certificate der under name.
func get10Trust(name string, der []byte) events.CertificateTrusted {
	sum := projections.Fingerprint(der)
	return events.CertificateTrusted{
		Fingerprint: hex.EncodeToString(sum[:]),
		Name:        name,
		Type:        events.CertificateTypeClient,
		Projects:    []string{},
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}
}

// get10Fill trusts n filler certificates and client.
func get10Fill(b *testing.B, ctx context.Context, d *daemon.Daemon, n int, client *x509.Certificate) {
	b.Helper()
	fillers := get10Fillers(b, n)
	payloads := make([]events.Payload, 0, len(fillers)+1)
	for i, der := range fillers {
		payloads = append(payloads, get10Trust(fmt.Sprintf("filler-%06d", i), der))
	}
	payloads = append(payloads, get10Trust("bench-client", client.Raw))
	get10Append(b, ctx, d, payloads)
}

// get10Append appends payloads in atomic batches, each chained on the
// model after the projector applied the previous one.
func get10Append(b *testing.B, ctx context.Context, d *daemon.Daemon, payloads []events.Payload) {
	b.Helper()
	actor := events.Actor{Name: "bench", Method: "system"}
	for done := 0; done < len(payloads); {
		batch := payloads[done:min(done+get10FillBatch, len(payloads))]
		envs := make([]events.Envelope, len(batch))
		for i, p := range batch {
			var err error
			if envs[i], err = events.New(fmt.Sprintf("bench-fill-%06d", done+i), "/trustlog/bench", time.Now(), actor, p); err != nil {
				b.Fatal(err)
			}
		}
		var err error
		for range 8 { // the daemon's own writes may come first: catch up and retry
			if err = d.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			m := d.Model()
			if _, err = d.Store().Append(ctx, m.Seq(), m.Hash(), envs...); !errors.Is(err, events.ErrConflict) {
				break
			}
		}
		if err != nil {
			b.Fatalf("append events %d..%d: %v", done, done+len(batch), err)
		}
		done += len(batch)
	}
	if err := d.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}

// get10Fillers returns n distinct certificates (DER) for the trust
// store, cached under the user's cache directory because generating them
// costs ≈ 0.16 ms each. They are ECDSA P-256 leaves signed by one P-256
// issuer: the trust store only hashes the DER, and a P-384 issuer would make
// generation six times slower (x509.CreateCertificate also verifies the
// signature it made). No private key is kept.
func get10Fillers(b *testing.B, n int) [][]byte {
	b.Helper()
	if n > get10Trusted {
		return get10Derive(b, get10Fillers(b, get10Trusted), n)
	}
	var path string
	if dir, err := os.UserCacheDir(); err == nil {
		path = filepath.Join(dir, "trustlog-bench", fmt.Sprintf("certs-%dk.pem", n/1000))
		if raw, err := os.ReadFile(path); err == nil {
			if ders := get10DecodePEM(raw); len(ders) == n {
				return ders
			}
		}
	}
	ders, err := get10GenerateFillers(n)
	if err != nil {
		b.Fatal(err)
	}
	if path == "" {
		return ders
	}
	var buf bytes.Buffer
	for _, der := range ders {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if err := get10WriteFile(path, buf.Bytes()); err != nil {
		b.Logf("filler certificates not cached: %v", err)
	}
	return ders
}

// get10Derive extends base (the cached fillers, whose subjects are
// "trustlog-bench-%06d" of their index) to n distinct certificates: filler
// i ≥ len(base) is base[i % len(base)] with i's six digits written into its
// subject. Its signature no longer verifies, which nothing here checks: the
// trust store keys certificates by the SHA-256 of their DER, and a derived
// filler still parses. Making a million signed certificates would take
// minutes and 600 MB of cache.
func get10Derive(b *testing.B, base [][]byte, n int) [][]byte {
	b.Helper()
	if n > 1_000_000 {
		b.Fatalf("at most 1,000,000 fillers, not %d", n)
	}
	out := make([][]byte, n)
	copy(out, base)
	for i := len(base); i < n; i++ {
		j := i % len(base)
		old := []byte(fmt.Sprintf("trustlog-bench-%06d", j))
		der := bytes.Clone(base[j])
		at := bytes.Index(der, old)
		if at < 0 {
			b.Fatalf("filler %d has no subject %q", j, old)
		}
		copy(der[at:], fmt.Sprintf("trustlog-bench-%06d", i))
		out[i] = der
	}
	if _, err := x509.ParseCertificate(out[n-1]); err != nil {
		b.Fatalf("a derived filler does not parse: %v", err)
	}
	return out
}

// get10DecodePEM returns the DER bytes of every PEM certificate in raw.
func get10DecodePEM(raw []byte) [][]byte {
	var ders [][]byte
	for {
		var blk *pem.Block
		blk, raw = pem.Decode(raw)
		if blk == nil {
			return ders
		}
		if blk.Type == "CERTIFICATE" {
			ders = append(ders, blk.Bytes)
		}
	}
}

func get10WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// get10GenerateFillers makes n certificates on every core.
func get10GenerateFillers(n int) ([][]byte, error) {
	issuerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notBefore := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"Trustlog"}, CommonName: "trustlog benchmark filler issuer"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &issuerKey.PublicKey, issuerKey)
	if err != nil {
		return nil, err
	}
	issuer, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ders := make([][]byte, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					errs[w] = err
					return
				}
				leaf := &x509.Certificate{
					SerialNumber: big.NewInt(int64(i) + 2),
					Subject:      pkix.Name{CommonName: fmt.Sprintf("trustlog-bench-%06d", i)},
					NotBefore:    notBefore,
					NotAfter:     notAfter,
					KeyUsage:     x509.KeyUsageDigitalSignature,
					ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				}
				if ders[i], err = x509.CreateCertificate(rand.Reader, leaf, issuer, &key.PublicKey, issuerKey); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return ders, errors.Join(errs...)
}

// newGet10ClientCert makes the trusted client: a self-signed ECDSA P-384
// certificate, as the trustlog and incus clients generate.
func newGet10ClientCert(b *testing.B) (tls.Certificate, *x509.Certificate, []byte) {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "trustlog-bench-client"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: x}, x, keyPEM
}

// get10NoopServer serves a fixed small JSON document on 127.0.0.1 with
// trustlogd's TLS and HTTP server settings and its server certificate, and
// returns its base URL.
func get10NoopServer(b *testing.B, dir string) string {
	b.Helper()
	return get10FixedServer(b, dir, []byte(`{"type":"sync","status":"Success","status_code":200,"operation":"","error_code":0,"error":"","metadata":{}}`+"\n"))
}

// get10FixedServer serves body on 127.0.0.1 with trustlogd's TLS and HTTP
// server settings and its server certificate, and returns its base URL.
func get10FixedServer(b *testing.B, dir string, body []byte) string {
	b.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS13,
			ClientAuth:     tls.RequestClientCert,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pair, nil },
			NextProtos:     []string{"h2", "http/1.1"},
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTLS(ln, "", "")
	}()
	b.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "https://" + ln.Addr().String()
}

// newGet10Client is a keep-alive HTTP/1.1 client over TLS 1.3 presenting
// cert, trusting roots, with room for conns connections to one host.
func newGet10Client(cert tls.Certificate, roots *x509.CertPool, conns int) *http.Client {
	return newGet10ClientMode(cert, roots, conns, false)
}

// newGet10ClientMode is newGet10Client, or with newConn a client that opens
// a new connection with a full TLS 1.3 handshake for every request (no
// keep-alive, no session resumption: it keeps no session cache).
func newGet10ClientMode(cert tls.Certificate, roots *x509.CertPool, conns int, newConn bool) *http.Client {
	return &http.Client{
		Timeout: get10Timeout,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				MinVersion:   tls.VersionTLS13,
				RootCAs:      roots,
				Certificates: []tls.Certificate{cert},
			},
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableKeepAlives:   newConn,
		},
	}
}

// get10Once sends GET url and reads the whole reply.
func get10Once(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// get10Hammer sends n GET url from conns goroutines and returns the number of
// failed requests and the first error.
func get10Hammer(c *http.Client, url string, conns, n int) (int, error) {
	failed, _, first := get10HammerTimed(c, url, conns, n)
	return failed, first
}

// get10HammerTimed is get10Hammer that also returns every request's
// latency, sorted.
func get10HammerTimed(c *http.Client, url string, conns, n int) (int, []time.Duration, error) {
	var left atomic.Int64
	left.Store(int64(n))
	var failed atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	lats := make([][]time.Duration, min(conns, n))
	for g := range lats {
		wg.Go(func() {
			lat := make([]time.Duration, 0, n/len(lats)+1)
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				if err := get10Once(c, url); err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
				}
				lat = append(lat, time.Since(t0))
			}
			lats[g] = lat
		})
	}
	wg.Wait()
	all := slices.Concat(lats...)
	slices.Sort(all)
	return int(failed.Load()), all, first
}

// get10Quantile returns the q quantile of sorted latencies.
func get10Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// get10AuthOf returns the auth field of the /1.0 document at url.
func get10AuthOf(b *testing.B, c *http.Client, url string) string {
	b.Helper()
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Metadata struct {
			Auth string `json:"auth"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		b.Fatal(err)
	}
	return env.Metadata.Auth
}

// get10LiveHeap returns the bytes of heap objects reachable after a collection.
func get10LiveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// get10GCCycles returns how many garbage collections this process has
// completed.
func get10GCCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// get10ProcessCPU returns the user and system CPU time of this process so far.
func get10ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// get10PerOp returns d per operation in microseconds.
func get10PerOp(d time.Duration, n int) float64 {
	return float64(d.Nanoseconds()) / 1e3 / float64(n)
}

// get10ClientProcess sends b.N requests to url from the load generator
// process and reports this process's CPU time (the server's) per request,
// and the client's. Allocations are the server's too.
func get10ClientProcess(b *testing.B, fx *get10Fixture, url string) {
	lg := fx.loadgen(b, url)
	// Outside the timed region: (re)opens every connection, so handshakes
	// are not counted.
	if _, err := lg.run(4 * get10Conns); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := get10ProcessCPU()
	res, err := lg.run(b.N)
	cpu := get10ProcessCPU() - cpu0
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(get10PerOp(cpu, b.N), "server-cpu-µs/op")
	b.ReportMetric(get10PerOp(res.CPU, b.N), "client-cpu-µs/op")
}

// get10InProcess sends requests to url from get10Conns goroutines of this
// process and reports the process's CPU time per request: client and
// server together.
func get10InProcess(b *testing.B, fx *get10Fixture, url string) {
	c := fx.httpClient(url)
	if failed, err := get10Hammer(c, url, get10Conns, 4*get10Conns); failed > 0 {
		b.Fatal(err)
	}
	b.SetParallelism(max(1, get10Conns/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := get10ProcessCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get10Once(c, url); err != nil {
				b.Error(err)
				return
			}
		}
	})
	cpu := get10ProcessCPU() - cpu0
	b.StopTimer()
	b.ReportMetric(get10PerOp(cpu, b.N), "process-cpu-µs/op")
}

// get10Serve calls the daemon's API handler for GET path as a trusted TLS
// client, without a connection: routing, the gate, authentication, the
// metrics observer and the route's handler.
func get10Serve(b *testing.B, fx *get10Fixture, path string) {
	h := fx.d.Handler()
	// The connection's memo, as trustlogd's listener gives every
	// connection: requests after the first on a keep-alive connection
	// find the peer certificate's fingerprint there.
	r := fx.peerRequest(path)
	r = r.WithContext(authn.WithConnMemo(r.Context()))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: status %d: %s", path, rec.Code, rec.Body)
	}
	w := &get10Sink{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		w.status, w.n = 0, 0
		h.ServeHTTP(w, r)
	}
	if w.status != http.StatusOK || w.n == 0 {
		b.Fatalf("GET %s: status %d, %d bytes", path, w.status, w.n)
	}
	b.ReportMetric(float64(w.n), "body-B")
}

// get10ServeParallel is get10Serve from GOMAXPROCS goroutines, each with
// its own connection memo: what the handler's shared state (metrics, the
// model, the reply cache) costs when every processor serves at once.
func get10ServeParallel(b *testing.B, fx *get10Fixture, path string) {
	h := fx.d.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := fx.peerRequest(path)
		r = r.WithContext(authn.WithConnMemo(r.Context()))
		w := &get10Sink{header: http.Header{}}
		for pb.Next() {
			clear(w.header)
			w.status, w.n = 0, 0
			h.ServeHTTP(w, r)
			if w.status != http.StatusOK {
				b.Errorf("GET %s: status %d", path, w.status)
				return
			}
		}
	})
}

// get10Sink is a ResponseWriter that counts the body and keeps nothing.
type get10Sink struct {
	header http.Header
	status int
	n      int
}

func (w *get10Sink) Header() http.Header { return w.header }

func (w *get10Sink) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *get10Sink) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// loadgenConfig tells the load generator process what to request.
type loadgenConfig struct {
	URL     string `json:"url"`
	Conns   int    `json:"conns"`
	NewConn bool   `json:"new_conn"` // a new connection and full handshake per request
	CertPEM []byte `json:"cert_pem"`
	KeyPEM  []byte `json:"key_pem"`
	RootPEM []byte `json:"root_pem"`
}

// loadgenRun asks the load generator for N requests.
type loadgenRun struct {
	N int `json:"n"`
}

// loadgenResult is the load generator's answer to a loadgenRun.
type loadgenResult struct {
	CPU    time.Duration `json:"cpu"` // the client process's CPU time for the run
	P50    time.Duration `json:"p50"` // request latencies, as the client saw them
	P99    time.Duration `json:"p99"`
	Failed int           `json:"failed"`
	Err    string        `json:"err,omitempty"`
}

// loadgen is a running load generator process. Runs go one at a time: the
// parent writes a loadgenRun to its stdin and reads a loadgenResult from
// its file descriptor 3.
type loadgen struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *json.Encoder
	dec    *json.Decoder
	output *bytes.Buffer // the child's stdout and stderr, read after it exits
	exited chan struct{}
}

// loadgen returns the fixture's load generator for url, starting it on
// first use. It runs until the benchmark ends.
func (fx *get10Fixture) loadgen(b *testing.B, url string) *loadgen {
	return fx.loadgenMode(b, url, false)
}

// loadgenMode is loadgen, with newConn for a load generator that opens a
// new connection for every request.
func (fx *get10Fixture) loadgenMode(b *testing.B, url string, newConn bool) *loadgen {
	b.Helper()
	fx.mu.Lock()
	defer fx.mu.Unlock()
	key := fmt.Sprintf("%s new-conn=%v", url, newConn)
	if lg, ok := fx.loadgens[key]; ok {
		return lg
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fx.clientX.Raw})
	cfg, err := json.Marshal(loadgenConfig{URL: url, Conns: get10Conns, NewConn: newConn, CertPEM: certPEM, KeyPEM: fx.keyPEM, RootPEM: fx.rootPEM})
	if err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(fx.dir, fmt.Sprintf("loadgen-%d.json", len(fx.loadgens)))
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		b.Fatal(err)
	}
	lg, err := startLoadgen(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	fx.loadgens[key] = lg
	return lg
}

func startLoadgen(cfgPath string) (*loadgen, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	replies, replyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer replyW.Close()
	cmd := exec.Command(exe, "-test.run=^TestGet10LoadGenerator$", "-test.count=1")
	cmd.Env = append(os.Environ(), get10LoadgenEnv+"="+cfgPath)
	cmd.ExtraFiles = []*os.File{replyW}
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		replies.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		replies.Close()
		return nil, err
	}
	lg := &loadgen{
		cmd:    cmd,
		stdin:  stdin,
		enc:    json.NewEncoder(stdin),
		dec:    json.NewDecoder(bufio.NewReader(replies)),
		output: out,
		exited: make(chan struct{}),
	}
	go func() {
		defer close(lg.exited)
		cmd.Wait()
		replies.Close()
	}()
	return lg, nil
}

// run has the load generator send n requests and waits for its answer.
func (lg *loadgen) run(n int) (loadgenResult, error) {
	var res loadgenResult
	if err := lg.enc.Encode(loadgenRun{N: n}); err != nil {
		return res, lg.failure(err)
	}
	if err := lg.dec.Decode(&res); err != nil {
		return res, lg.failure(err)
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("load generator: %d of %d requests failed, first: %s", res.Failed, n, res.Err)
	}
	return res, nil
}

// failure stops the child and describes err with the child's output.
func (lg *loadgen) failure(err error) error {
	lg.close()
	return fmt.Errorf("load generator: %w; its output:\n%s", err, lg.output)
}

// close ends the load generator: it exits when its stdin closes, and is
// killed if it has not within ten seconds.
func (lg *loadgen) close() {
	lg.stdin.Close()
	select {
	case <-lg.exited:
	case <-time.After(10 * time.Second):
		lg.cmd.Process.Kill()
		<-lg.exited
	}
}

// TestGet10LoadGenerator is the client side of BenchmarkGet10, not a test:
// the benchmark runs this test binary again with only this function
// selected and TRUSTLOG_BENCH_LOADGEN naming its configuration, so that the
// client's CPU time is not counted as the server's. Without the variable
// it returns at once.
func TestGet10LoadGenerator(t *testing.T) {
	path := os.Getenv(get10LoadgenEnv)
	if path == "" {
		return
	}
	if err := runGet10Loadgen(path, os.Stdin, os.NewFile(3, "replies")); err != nil {
		t.Fatal(err)
	}
}

// runGet10Loadgen answers each loadgenRun read from in with a loadgenResult
// written to out, until in ends.
func runGet10Loadgen(cfgPath string, in io.Reader, out io.WriteCloser) error {
	defer out.Close()
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg loadgenConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(cfg.CertPEM, cfg.KeyPEM)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cfg.RootPEM) {
		return errors.New("no root certificate")
	}
	c := newGet10ClientMode(cert, roots, cfg.Conns, cfg.NewConn)
	defer c.CloseIdleConnections()
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	for {
		var run loadgenRun
		if err := dec.Decode(&run); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		cpu0 := get10ProcessCPU()
		failed, lats, first := get10HammerTimed(c, cfg.URL, cfg.Conns, run.N)
		res := loadgenResult{CPU: get10ProcessCPU() - cpu0, Failed: failed,
			P50: get10Quantile(lats, 0.50), P99: get10Quantile(lats, 0.99)}
		if first != nil {
			res.Err = first.Error()
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
}
