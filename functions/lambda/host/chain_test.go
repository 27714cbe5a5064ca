package host_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/lambda/host"
)

// TestChainBreakLambda: a Lambda host whose read model finds the event
// log broken (here a record written behind Trustlog's back between two
// invocations) answers every request with the 503 the local gate gives,
// and its authorizer denies every caller, trusted ones included.
func TestChainBreakLambda(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := natstest.RunServer(t)
	st := natstest.OpenStoreOn(t, srv)

	// alice is trusted by an intact log of two events.
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	alicePEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	var envs []events.Envelope
	for _, p := range []events.Payload{
		&events.CertificateTrusted{Fingerprint: hex.EncodeToString(sum[:]), Name: "alice", Type: events.CertificateTypeClient,
			Projects: []string{}, Certificate: alicePEM},
		&events.ConfigChanged{Key: "user.a", Value: "1"},
	} {
		env, err := events.New("ev-"+p.EventType(), "urn:test", time.Now(), events.Actor{Name: "test", Method: "system"}, p)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	if _, err := st.Append(ctx, 0, "", envs...); err != nil {
		t.Fatal(err)
	}

	h, err := host.Start(ctx, host.Config{NATSURL: srv.ClientURL(), Gateway: host.GatewayALB, ServerName: "lambda",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)

	serve := func(path, certPEM string) (int, api.Response) {
		t.Helper()
		r := httptest.NewRequestWithContext(ctx, "GET", path, nil)
		if certPEM != "" {
			r.Header.Set(host.HeaderALBClientCert, url.PathEscape(certPEM))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var env api.Response
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
			t.Fatalf("GET %s: not an envelope: %s", path, w.Body)
		}
		return w.Code, env
	}
	authorize := func() bool {
		t.Helper()
		return h.Authorize(ctx, "GET", "/1.0/certificates", http.Header{}, nil, alicePEM).Allow
	}
	if code, _ := serve("/1.0", ""); code != http.StatusOK {
		t.Fatalf("GET /1.0 on an intact log: %d", code)
	}
	if code, _ := serve("/1.0/certificates", alicePEM); code != http.StatusOK {
		t.Fatalf("alice on an intact log: %d", code)
	}
	if !authorize() {
		t.Fatal("the authorizer denies alice on an intact log")
	}

	// A rewrite of event 2, published behind Trustlog's back.
	recs, err := st.Read(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := events.New("forged", "urn:forger", time.Now(), events.Actor{Name: "mallory"}, &events.ConfigChanged{Key: "user.a", Value: "2"})
	if err != nil {
		t.Fatal(err)
	}
	forged.PrevHash = events.Hash(recs[0].Raw)
	raw, _ := forged.Marshal()
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, forged.Subject, raw); err != nil {
		t.Fatal(err)
	}

	const refusal = "Service unavailable: the event log is broken at sequence 3: its prevhash does not match the hash of event 2; " +
		"this instance will not vouch for its trust store"
	for _, c := range []struct{ path, cert string }{{"/1.0", ""}, {"/1.0/certificates", alicePEM}} {
		if code, env := serve(c.path, c.cert); code != http.StatusServiceUnavailable || env.Error != refusal {
			t.Errorf("GET %s after the break: %d %q, want 503 %q", c.path, code, env.Error, refusal)
		}
	}
	if authorize() {
		t.Error("the authorizer allows alice after the break")
	}
	if m := h.Model(); m.ChainBreak() != 3 {
		t.Errorf("ChainBreak() = %d, want 3", m.ChainBreak())
	}
	// The sweeper does not store a snapshot of the broken model.
	if _, err := h.SaveSnapshot(ctx, 1); err == nil {
		t.Error("a snapshot of the broken model was stored")
	}
}
