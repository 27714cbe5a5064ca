package e2e_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/trustlog/trustlog/cli/command"
	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/oidc"
	"github.com/trustlog/trustlog/local/daemon"
	"github.com/trustlog/trustlog/local/internal/oidctest"
	"github.com/trustlog/trustlog/projections"
)

// fillTrustStore appends n CertificateTrusted events with distinct random
// fingerprints in atomic batches. Only the fingerprint is matched on the
// request path, so the entries carry no certificate text.
func fillTrustStore(b *testing.B, d *daemon.Daemon, n int) {
	b.Helper()
	fillTrustStoreWith(b, d, n, "")
}

// fillTrustStoreWith is fillTrustStore with pemText as every entry's
// certificate text (each event carries its own copy, as real ones do).
func fillTrustStoreWith(b *testing.B, d *daemon.Daemon, n int, pemText string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const batch = 250
	for done := 0; done < n; {
		if err := d.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		m := d.Model()
		envs := make([]events.Envelope, 0, batch)
		for i := 0; i < batch && done+i < n; i++ {
			var sum [32]byte
			rand.Read(sum[:])
			env, err := events.New(fmt.Sprintf("fill-%d", done+i), "/bench", time.Now(), events.Actor{Name: "bench", Method: "system"},
				events.CertificateTrusted{Fingerprint: hex.EncodeToString(sum[:]), Name: "filler", Type: "client", Projects: []string{}, Certificate: pemText})
			if err != nil {
				b.Fatal(err)
			}
			envs = append(envs, env)
		}
		if _, err := d.Store().Append(ctx, m.Seq(), m.Hash(), envs...); err != nil {
			b.Fatal(err)
		}
		done += len(envs)
	}
	if err := d.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	if got := d.Model().NumCertificates(); got < n {
		b.Fatalf("trust store holds %d entries, want %d", got, n)
	}
}

// benchClient is a keep-alive HTTP/1.1 client over TLS 1.3 with cert.
func benchClient(cert tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}, // benchmark: trust is checked server-side
		MaxIdleConnsPerHost: 256,
		MaxConnsPerHost:     256,
	}}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hammer runs GET url in parallel (64 goroutines on 2 cores) over
// keep-alive connections and reports CPU per request of the whole process
// (client and server share it).
func hammer(b *testing.B, c *http.Client, url string) {
	b.Helper()
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	b.SetParallelism(32)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func p384Cert(b *testing.B, name string, server bool) (tls.Certificate, *x509.Certificate) {
	b.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	keyDER, _ := x509.MarshalECPrivateKey(k)
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		b.Fatal(err)
	}
	x, _ := x509.ParseCertificate(der)
	return pair, x
}

// BenchmarkGet10 compares an authenticated GET /1.0 against trustlogd
// with 100,000 trusted certificates in its model with the same TLS setup
// serving a no-op handler.
func BenchmarkGet10(b *testing.B) {
	client, clientX := p384Cert(b, "bench-client", false)

	// One daemon for every round of the sub-benchmark: filling 100k entries
	// takes seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: b.TempDir(), HTTPSAddress: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	fillTrustStore(b, d, 100_000)
	env, err := events.New("bench-client", "/bench", time.Now(), events.Actor{Name: "bench"}, events.CertificateTrusted{
		Fingerprint: fingerprintOf(clientX), Name: "bench", Type: "client", Projects: []string{},
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientX.Raw}))})
	if err != nil {
		b.Fatal(err)
	}
	m := d.Model()
	if _, err := d.Store().Append(ctx, m.Seq(), m.Hash(), env); err != nil {
		b.Fatal(err)
	}
	if err := d.Sync(ctx); err != nil {
		b.Fatal(err)
	}

	b.Run("trustlogd-100k", func(b *testing.B) {
		c := benchClient(client)
		if got := authOfB(b, c, "https://"+d.HTTPSAddr()+"/1.0"); got != "trusted" {
			b.Fatalf("bench client is %q", got)
		}
		hammer(b, c, "https://"+d.HTTPSAddr()+"/1.0")
	})
	// GET / goes through the same gate and authentication but answers a
	// few bytes: the cost of authenticating, without the /1.0 document.
	b.Run("trustlogd-100k-root", func(b *testing.B) {
		hammer(b, benchClient(client), "https://"+d.HTTPSAddr()+"/")
	})

	serverPair, _ := p384Cert(b, "bench-server", true)
	body := []byte(`{"type":"sync","status":"Success","status_code":200,"operation":"","error_code":0,"error":"","metadata":{}}` + "\n")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequestClientCert, Certificates: []tls.Certificate{serverPair}}
	srv.StartTLS()
	defer srv.Close()
	b.Run("noop", func(b *testing.B) {
		hammer(b, benchClient(client), srv.URL+"/1.0")
	})
}

// BenchmarkAuthenticate measures authn alone on a 100k-entry model: for
// mTLS the SHA-256 of the peer leaf and one lock-free map lookup; for a JWT
// bearer token (ES384 from the same certificate's key) the cached
// verification plus the same trust checks; for an OIDC access token (RS256
// from the real test provider) the cached verification plus the identity
// lookup and its grant.
func BenchmarkAuthenticate(b *testing.B) {
	bld := projections.NewBuilder(nil)
	clientPair, clientX := p384Cert(b, "c", false)
	seq := uint64(0)
	add := func(fp, pemText string) {
		seq++
		env, _ := events.New(fmt.Sprint(seq), "/bench", time.Now(), events.Actor{}, events.CertificateTrusted{Fingerprint: fp, Name: "n", Type: "client", Projects: []string{}, Certificate: pemText})
		env.PrevHash = bld.Hash()
		raw, _ := env.Marshal()
		if err := bld.Apply(events.Record{Seq: seq, Raw: raw}); err != nil {
			b.Fatal(err)
		}
	}
	for range 100_000 {
		var sum [32]byte
		rand.Read(sum[:])
		add(hex.EncodeToString(sum[:]), "")
	}
	add(fingerprintOf(clientX), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientX.Raw})))
	p := oidctest.Start(b, oidctest.Options{})
	for _, ev := range []events.Payload{
		events.ConfigChanged{Key: "oidc.issuer", Value: p.Issuer},
		events.ConfigChanged{Key: "oidc.client.id", Value: oidctest.ClientID},
		events.IdentityCreated{ID: projections.OIDCIdentityID(p.Issuer, "unknown"), AuthMethod: "oidc", Name: "unknown", Issuer: p.Issuer, Subject: "unknown", Access: "admin"},
	} {
		seq++
		env, _ := events.New(fmt.Sprint(seq), "/bench", time.Now(), events.Actor{}, ev)
		env.PrevHash = bld.Hash()
		raw, _ := env.Marshal()
		if err := bld.Apply(events.Record{Seq: seq, Raw: raw}); err != nil {
			b.Fatal(err)
		}
	}
	model := bld.Model()
	a := authn.New(staticModel{model}, nil).WithOIDC(oidc.New(nil, nil))
	oidcReq := httptest.NewRequest("GET", "/1.0", nil)
	oidcReq.TLS = &tls.ConnectionState{}
	oidcReq.Header.Set("Authorization", "Bearer "+deviceToken(b, p).AccessToken)
	mtls := httptest.NewRequest("GET", "/1.0", nil)
	mtls.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{clientX}}
	tok, err := command.ClientJWT(clientPair.PrivateKey.(crypto.Signer), fingerprintOf(clientX), time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	bearer := httptest.NewRequest("GET", "/1.0", nil)
	bearer.TLS = &tls.ConnectionState{}
	bearer.Header.Set("Authorization", "Bearer "+tok)
	for _, tc := range []struct {
		name string
		r    *http.Request
	}{{"mtls", mtls}, {"jwt-bearer", bearer}, {"oidc-token", oidcReq}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !a.Authenticate(tc.r).Trusted {
						b.Error("not trusted")
						return
					}
				}
			})
		})
	}
}

type staticModel struct{ m *projections.Model }

func (s staticModel) Snapshot() *projections.Model { return s.m }

// authOfB returns the auth field of GET /1.0 for client c.
func authOfB(b *testing.B, c *http.Client, url string) string {
	b.Helper()
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Metadata struct{ Auth string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		b.Fatal(err)
	}
	return env.Metadata.Auth
}
