package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// issue asks for a token through the unix socket and returns its string
// and operation id.
func (s *server) issue(t *testing.T, req api.CertificatesPost) (string, string) {
	t.Helper()
	req.Token = true
	code, env := s.call(t, "POST", "/1.0/certificates", req)
	if code != http.StatusAccepted || env.Type != "async" || env.StatusCode != 100 {
		t.Fatalf("issue token: %d %+v", code, env)
	}
	var op api.Operation
	if err := json.Unmarshal(env.Metadata, &op); err != nil {
		t.Fatal(err)
	}
	if op.Class != "token" || op.Status != "Running" || op.StatusCode != 103 || env.Operation != "/1.0/operations/"+op.ID {
		t.Fatalf("token operation = %+v", op)
	}
	m := op.Metadata
	var addrs []string
	for _, a := range m["addresses"].([]any) {
		addrs = append(addrs, a.(string))
	}
	exp, _ := time.Parse(time.RFC3339Nano, m["expiresAt"].(string))
	tok := api.CertificateAddToken{ClientName: req.Name, Fingerprint: m["fingerprint"].(string), Addresses: addrs,
		Secret: m["secret"].(string), ExpiresAt: exp}
	s.mu.Lock()
	s.secrets = append(s.secrets, tok.Secret)
	s.mu.Unlock()
	return tok.Encode(), op.ID
}

// redeem posts a trust token with the certificate of c.
func redeem(t *testing.T, c *http.Client, base, tok string, extra map[string]any) (int, api.Response) {
	t.Helper()
	body := map[string]any{"trust_token": tok}
	for k, v := range extra {
		body[k] = v
	}
	return do(t, c, "POST", base+"/1.0/certificates", body)
}

// storedTypes returns the event types on the stream, in order.
func (s *server) storedTypes(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last := s.lastSeq(t)
	recs, err := s.d.Store().Read(ctx, 1, last)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		env, err := events.Decode(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env.Type)
	}
	return out
}

// TestTokenRedeemedExactlyOnce is the tokens issue's concurrency proof:
// 32 clients, each with its own certificate, redeem one token at once.
func TestTokenRedeemedExactlyOnce(t *testing.T) {
	t.Parallel()
	s := start(t)
	tok, _ := s.issue(t, api.CertificatesPost{Name: "race", Restricted: true, Projects: []string{"p"}})
	base := "https://" + s.d.HTTPSAddr()
	const n = 32
	clients := make([]*http.Client, n)
	for i := range clients {
		pair, _ := newCert(t, "", "racer")
		clients[i] = tlsClient(&pair)
	}
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			codes[i], _ = redeem(t, clients[i], base, tok, map[string]any{"restricted": false, "name": "evil"})
		})
	}
	close(start)
	wg.Wait()
	created, refused := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusForbidden:
			refused++
		}
	}
	if created != 1 || refused != n-1 {
		t.Fatalf("codes = %v: %d created, %d refused", codes, created, refused)
	}
	types := s.storedTypes(t)
	trusted := 0
	for i, typ := range types {
		if typ == "trustlog.certificate.trusted.v1" {
			trusted++
			if i == 0 || types[i-1] != "trustlog.token.redeemed.v1" {
				t.Errorf("CertificateTrusted not appended with TokenRedeemed: %v", types)
			}
		}
	}
	if trusted != 1 {
		t.Errorf("%d CertificateTrusted events, want 1: %v", trusted, types)
	}
	var certs []api.Certificate
	_, env := s.call(t, "GET", "/1.0/certificates?recursion=1", nil)
	json.Unmarshal(env.Metadata, &certs)
	if len(certs) != 1 || certs[0].Name != "race" || !certs[0].Restricted || len(certs[0].Projects) != 1 {
		t.Errorf("entry = %+v: the issuer's name and restrictions must win", certs)
	}
}

// TestTokenLifecycle covers reuse, revocation, expiry with an injected
// clock, the sweeper, bad tokens, and that a bad certificate does not burn
// a token.
func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := newServer(t, d, nil)
	base := "https://" + d.HTTPSAddr()
	newClient := func() *http.Client { p, _ := newCert(t, "", "c"); return tlsClient(&p) }

	// Reuse.
	tok, _ := s.issue(t, api.CertificatesPost{Name: "once"})
	if code, _ := redeem(t, newClient(), base, tok, nil); code != 201 {
		t.Fatalf("first use: %d", code)
	}
	if code, env := redeem(t, newClient(), base, tok, nil); code != 403 || env.Error != "No matching certificate add operation found" {
		t.Fatalf("reuse: %d %+v", code, env)
	}

	// Revocation.
	tok, id := s.issue(t, api.CertificatesPost{Name: "revoked"})
	if code, _ := s.call(t, "DELETE", "/1.0/operations/"+id, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if code, env := s.call(t, "DELETE", "/1.0/operations/"+id, nil); code != 400 || env.Error != "Only running operations can be cancelled" {
		t.Fatalf("revoke twice: %d %+v", code, env)
	}
	if code, _ := redeem(t, newClient(), base, tok, nil); code != 403 {
		t.Fatalf("revoked token: %d", code)
	}

	// Expiry: enforced at redemption even before the sweeper runs.
	if code, env := s.call(t, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": "5S"}}); code != 200 {
		t.Fatalf("set expiry: %+v", env)
	}
	tok, _ = s.issue(t, api.CertificatesPost{Name: "late"})
	sweepTok, sweepID := s.issue(t, api.CertificatesPost{Name: "swept"})
	clk.Add(6 * time.Second)
	if code, env := redeem(t, newClient(), base, tok, nil); code != 403 || env.Error != "Token has expired" {
		t.Fatalf("expired token: %d %+v", code, env)
	}
	if code, env := redeem(t, newClient(), base, tok, nil); code != 403 || env.Error != "No matching certificate add operation found" {
		t.Fatalf("expired token again: %d %+v", code, env)
	}
	n, err := d.Service().Sweep(ctx, clk.Now())
	if err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want 1", n, err)
	}
	if n, _ := d.Service().Sweep(ctx, clk.Now()); n != 0 {
		t.Errorf("second sweep expired %d", n)
	}
	_, env := s.call(t, "GET", "/1.0/operations/"+sweepID, nil)
	var op api.Operation
	json.Unmarshal(env.Metadata, &op)
	if op.Status != "Cancelled" {
		t.Errorf("swept token operation status = %q", op.Status)
	}
	if code, _ := redeem(t, newClient(), base, sweepTok, nil); code != 403 {
		t.Errorf("swept token accepted")
	}

	// Bad tokens: 403 and nothing appended.
	good, _ := s.issue(t, api.CertificatesPost{Name: "good"})
	for name, bad := range map[string]string{
		"garbage":      "garbage!",
		"truncated":    good[:len(good)/2],
		"not json":     "bm90IGpzb24=",
		"empty name":   api.CertificateAddToken{Fingerprint: "ab", Addresses: []string{"x:1"}, Secret: "s"}.Encode(),
		"no addresses": api.CertificateAddToken{ClientName: "n", Fingerprint: "ab", Secret: "s"}.Encode(),
		"no secret":    api.CertificateAddToken{ClientName: "n", Fingerprint: "ab", Addresses: []string{"x:1"}}.Encode(),
		"no fp":        api.CertificateAddToken{ClientName: "n", Addresses: []string{"x:1"}, Secret: "s"}.Encode(),
		"wrong secret": api.CertificateAddToken{ClientName: "n", Fingerprint: "ab", Addresses: []string{"x:1"}, Secret: strings.Repeat("0", 64)}.Encode(),
	} {
		before := s.lastSeq(t)
		if code, env := redeem(t, newClient(), base, bad, nil); code != 403 || env.Type != "error" {
			t.Errorf("%s: %d %+v", name, code, env)
		}
		if s.lastSeq(t) != before {
			t.Errorf("%s: stream moved", name)
		}
	}
	// No client certificate: refused, the token survives.
	if code, env := redeem(t, tlsClient(nil), base, good, nil); code != 400 || env.Error != "No client certificate provided" {
		t.Errorf("no certificate: %d %+v", code, env)
	}
	if code, _ := redeem(t, newClient(), base, good, nil); code != 201 {
		t.Errorf("token burnt by a failed attempt: %d", code)
	}
}

// TestNoSecretInClear scans the stream, the server log and error bodies
// of a token-heavy run for the secrets and the token strings.
func TestNoSecretInClear(t *testing.T) {
	t.Parallel()
	s := start(t)
	base := "https://" + s.d.HTTPSAddr()
	var bodies bytes.Buffer
	var secrets []string
	record := func(env api.Response) {
		raw, _ := json.Marshal(env)
		bodies.Write(raw)
	}
	for i := range 3 {
		tok, id := s.issue(t, api.CertificatesPost{Name: "n" + string(rune('a'+i))})
		dec, _ := api.DecodeCertificateAddToken(tok)
		secrets = append(secrets, dec.Secret, tok)
		p, _ := newCert(t, "", "x")
		c := tlsClient(&p)
		switch i {
		case 0:
			_, env := redeem(t, c, base, tok, nil)
			record(env)
			_, env = redeem(t, c, base, tok, nil)
			record(env)
		case 1:
			_, env := s.call(t, "DELETE", "/1.0/operations/"+id, nil)
			record(env)
			_, env = redeem(t, c, base, tok, nil)
			record(env)
		case 2:
			_, env := redeem(t, c, base, tok[:20], nil)
			record(env)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := s.d.Store().Read(ctx, 1, s.lastSeq(t))
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	for _, r := range recs {
		stream.Write(r.Raw)
	}
	key, err := os.ReadFile(filepath.Join(filepath.Dir(s.d.UnixSocket()), "sealing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(filepath.Dir(s.d.UnixSocket()), "sealing.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("sealing.key mode %v", st.Mode().Perm())
	}
	for _, sec := range secrets {
		for where, b := range map[string][]byte{"stream": stream.Bytes(), "log": s.log.Bytes(), "error bodies": bodies.Bytes()} {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("a secret appears in the %s", where)
			}
		}
	}
	if bytes.Contains(stream.Bytes(), key) {
		t.Error("the sealing key appears in the stream")
	}
}
