package e2e_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

func init() {
	// Pebble reads these when its parts are made: validate at once, and
	// never reject a good nonce (deterministic tests).
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
}

// pebbleCA is an in-process pebble ACME server whose validation authority
// fetches HTTP-01 answers from 127.0.0.1:httpPort ("localhost").
type pebbleCA struct {
	dirURL   string
	client   *http.Client
	rootFile string
	mgmtURL  string // pebble's management API (set-renewal-info)
	mgmt     *http.Client
}

func startPebble(t *testing.T, httpPort int) pebbleCA {
	t.Helper()
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	c := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {}})
	v := va.New(logger, httpPort, 0, false, "", store)
	w := wfe.New(logger, store, v, c, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)
	srv := httptest.NewTLSServer(w.Handler())
	t.Cleanup(srv.Close)
	root := filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.GetRootCert(0).Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	mgmt := httptest.NewTLSServer(w.ManagementHandler())
	t.Cleanup(mgmt.Close)
	return pebbleCA{dirURL: srv.URL + wfe.DirectoryPath, client: srv.Client(), rootFile: root, mgmtURL: mgmt.URL, mgmt: mgmt.Client()}
}

// TestACMEIssuance: trustlogd obtains its served certificate from an ACME
// CA (pebble, in process, validating real HTTP-01 against Trustlog's own
// handler): the challenge answer A records is served by instance B, the
// new certificate is served at once without a restart, curl verifies it
// with the CA's root, and bad settings leave the old certificate served;
// a failure backs off until the settings change.
func TestACMEIssuance(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// B only answers challenges: its own renewals (the two share a source
	// name, being on one host) would race A's steps below.
	b, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(), ACMEHTTPAddress: "127.0.0.1:0",
		Logger: quiet, ACMECheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	_, port, _ := strings.Cut(b.ACMEHTTPAddr(), ":")
	httpPort, _ := strconv.Atoi(port)
	pebble := startPebble(t, httpPort)
	clk := &clock{now: time.Now()}
	ad, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(), ACMEHTTPAddress: "-",
		ACMEHTTPClient: pebble.client, Logger: quiet, Now: clk.Now, ACMECheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ad.Close() })
	a := newServer(t, ad, nil)
	oldFP := ad.Fingerprint()

	// Bad settings: refused at once, or the issuance fails; nothing changes.
	for name, cfg := range map[string]map[string]string{
		"invalid domain":  {"acme.domain": "not a domain"},
		"IP address":      {"acme.domain": "127.0.0.1"},
		"email":           {"acme.email": "nobody"},
		"unsupported DNS": {"acme.challenge": "DNS-01"},
	} {
		if code, _ := a.configure(t, cfg); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
	a.configure(t, map[string]string{"acme.domain": "localhost", "acme.email": "ops@example.com", "acme.ca_url": pebble.dirURL, "acme.agree_tos": "false"})
	// The configuration is the caller's to fix: 400, not the CA's 502.
	if code, env := a.call(t, "POST", "/1.0/trustlog/acme/renew", nil); code != http.StatusBadRequest || !strings.Contains(env.Error, "acme.agree_tos must be true") {
		t.Errorf("renew without the terms agreed: %d %q", code, env.Error)
	}
	a.configure(t, map[string]string{"acme.agree_tos": "true", "acme.ca_url": "https://127.0.0.1:1/dir"})
	if code, _ := a.call(t, "POST", "/1.0/trustlog/acme/renew", nil); code != http.StatusBadGateway {
		t.Errorf("renew with an unreachable CA: %d", code)
	}
	if ad.Fingerprint() != oldFP {
		t.Fatal("a failed issuance changed the served certificate")
	}

	a.configure(t, map[string]string{"acme.ca_url": pebble.dirURL})
	if code, env := a.call(t, "POST", "/1.0/trustlog/acme/renew", nil); code != http.StatusOK {
		t.Fatalf("renew: %d %q", code, env.Error)
	}
	newFP := ad.Fingerprint()
	if newFP == oldFP {
		t.Fatal("the served certificate did not change")
	}
	// Verified with the ACME CA's root and the domain name, as a client would.
	_, httpsPort, _ := strings.Cut(ad.HTTPSAddr(), ":")
	out, err := run(t, os.Environ(), "", "curl", "-sS", "--fail", "--cacert", pebble.rootFile, "--resolve", "localhost:"+httpsPort+":127.0.0.1",
		"https://localhost:"+httpsPort+"/1.0")
	if err != nil || !strings.Contains(out, `"api_version":"1.0"`) {
		t.Fatalf("curl with the ACME root: %v\n%s", err, out)
	}
	var srv api.Server
	_, env := a.call(t, "GET", "/1.0", nil)
	_ = json.Unmarshal(env.Metadata, &srv)
	if srv.Environment == nil || srv.Environment.CertificateFingerprint != newFP {
		t.Errorf("GET /1.0 environment certificate fingerprint = %+v, want %s", srv.Environment, newFP)
	}
	m := ad.Model()
	if sc := m.ServerCertificate(); sc == nil || sc.Fingerprint != newFP || sc.Source != "acme" || sc.Domains[0] != "localhost" {
		t.Errorf("rotation event: %+v", sc)
	}
	if st, err := os.Stat(filepath.Join(filepath.Dir(ad.UnixSocket()), "server.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v %v", st, err)
	}

	// B follows the rotation once its data directory holds the new pair (a
	// shared volume in production; copied here).
	for _, f := range []string{"server.crt", "server.key"} {
		raw, err := os.ReadFile(filepath.Join(filepath.Dir(ad.UnixSocket()), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(b.UnixSocket()), f), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a.configure(t, map[string]string{"user.nudge": "1"}) // any event makes B look again
	for b.Fingerprint() != newFP {
		select {
		case <-ctx.Done():
			t.Fatal("B did not switch to the rotated certificate")
		case <-time.After(20 * time.Millisecond):
		}
	}

	// Renewal: nothing to do while the certificate is young; past two
	// thirds of its validity it is renewed, and the steps are recorded.
	if err := ad.CheckRenewal(ctx, ""); err != nil || ad.Fingerprint() != newFP {
		t.Fatalf("early check renewed (%v) or failed", err)
	}
	leaf := srv.Environment.Certificate
	block, _ := pem.Decode([]byte(leaf))
	cert, _ := x509.ParseCertificate(block.Bytes)
	shift := cert.NotAfter.Sub(cert.NotBefore)*2/3 + time.Hour - time.Since(cert.NotBefore)
	clk.Add(shift)
	if err := ad.CheckRenewal(ctx, ""); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if reason := lastScheduledReason(t, a); reason != "two thirds of the validity passed" {
		t.Errorf("renewal reason %q", reason)
	}
	clk.Add(-shift) // back to now: the renewed certificate is young again
	if ad.Fingerprint() == newFP {
		t.Error("the certificate was not renewed past two thirds of its validity")
	}
	if r := ad.Model().LastRenewal(); r == nil || r.Outcome != "succeeded" {
		t.Errorf("last renewal step: %+v", r)
	}
	// The CA's renewal information (ARI) asks for an early renewal: a
	// suggested window that has begun renews a young certificate.
	young := ad.Fingerprint()
	_, env = a.call(t, "GET", "/1.0", nil)
	_ = json.Unmarshal(env.Metadata, &srv)
	window := `{"suggestedWindow":{"start":"` + clk.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339) + `","end":"` + clk.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `"}}`
	body, _ := json.Marshal(map[string]string{"Certificate": srv.Environment.Certificate, "ARIResponse": window})
	resp, err := pebble.mgmt.Post(pebble.mgmtURL+"/set-renewal-info/", "application/json", strings.NewReader(string(body)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("set renewal info: %v %v", err, resp)
	}
	resp.Body.Close()
	if err := ad.CheckRenewal(ctx, ""); err != nil {
		t.Fatalf("ARI renewal: %v", err)
	}
	if ad.Fingerprint() == young {
		t.Error("the CA's renewal information did not renew the certificate")
	}
	if reason := lastScheduledReason(t, a); reason != "the CA's renewal information suggests it" {
		t.Errorf("renewal reason %q, want ARI", reason)
	}

	// A failing CA: failed step with a next attempt, the certificate kept,
	// and no new attempt before then.
	renewed := ad.Fingerprint()
	a.configure(t, map[string]string{"acme.ca_url": "https://127.0.0.1:1/dir"})
	clk.Add(10 * 365 * 24 * time.Hour) // everything is due now
	if err := ad.CheckRenewal(ctx, ""); err == nil {
		t.Fatal("renewal against an unreachable CA succeeded")
	}
	r := ad.Model().LastRenewal()
	if r == nil || r.Outcome != "failed" || !r.NextAttempt.After(clk.Now()) || ad.Fingerprint() != renewed {
		t.Fatalf("after a failure: %+v, fingerprint kept %v", r, ad.Fingerprint() == renewed)
	}
	if err := ad.CheckRenewal(ctx, ""); err != nil || *ad.Model().LastRenewal() != *r {
		t.Errorf("a check during the back-off tried again (%v, last step %+v)", err, ad.Model().LastRenewal())
	}
	// Changed settings are a new request: the back-off of the old ones
	// does not hold them back.
	a.configure(t, map[string]string{"acme.ca_url": pebble.dirURL})
	if err := ad.CheckRenewal(ctx, ""); err != nil || ad.Fingerprint() == renewed {
		t.Errorf("a check after the settings changed: %v, certificate renewed %v (last step %+v)", err, ad.Fingerprint() != renewed, ad.Model().LastRenewal())
	}
	// The unix socket keeps working whatever ACME does (break glass).
	if code, _ := a.call(t, "GET", "/1.0/certificates", nil); code != 200 {
		t.Errorf("unix socket after ACME failures: %d", code)
	}
}

// TestACMEAutomatic: setting the acme.* keys is enough: the instance
// notices the change, obtains a certificate and serves it, recording why.
func TestACMEAutomatic(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The challenge listener's port must be known before pebble starts.
	probe, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", ACMEHTTPAddress: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.ACMEHTTPAddr()
	probe.Close()
	_, port, _ := strings.Cut(addr, ":")
	httpPort, _ := strconv.Atoi(port)
	pebble := startPebble(t, httpPort)
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", ACMEHTTPAddress: addr, ACMEHTTPClient: pebble.client, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := newServer(t, d, nil)
	old := d.Fingerprint()
	s.configure(t, map[string]string{"acme.domain": "localhost", "acme.email": "ops@example.com", "acme.ca_url": pebble.dirURL, "acme.agree_tos": "true"})
	for d.Fingerprint() == old {
		select {
		case <-ctx.Done():
			t.Fatalf("no certificate 60 s after the acme.* keys were set; last step %+v", d.Model().LastRenewal())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The outcome is recorded just after the new certificate is served.
	for r := d.Model().LastRenewal(); r == nil || r.Outcome != "succeeded"; r = d.Model().LastRenewal() {
		select {
		case <-ctx.Done():
			t.Fatalf("last renewal step: %+v", r)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// docsConfigureSteps returns the `trustlog config set` lines of the
// "Configure" block of docs/acme.md, in order, as key and value.
func docsConfigureSteps(t *testing.T) [][2]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "acme.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(raw), "## Configure\n")
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	var steps [][2]string
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 || f[0] != "trustlog" || f[1] != "config" || f[2] != "set" {
			t.Fatalf("docs/acme.md: not a config set line: %q", line)
		}
		steps = append(steps, [2]string{f[3], f[4]})
	}
	if len(steps) < 3 {
		t.Fatalf("docs/acme.md: %d config set lines in the Configure block", len(steps))
	}
	return steps
}

// TestACMEKeyByKey: setting the acme.* keys one by one with the CLI, in
// docs/acme.md's order (and in the reverse order), gives a certificate
// within seconds: the incomplete configurations on the way ask the CA
// nothing and start no back-off, and the change that completes the
// configuration starts an attempt at once.
func TestACMEKeyByKey(t *testing.T) {
	t.Parallel()
	docs := docsConfigureSteps(t)
	reversed := slices.Clone(docs)
	slices.Reverse(reversed)
	for _, tc := range []struct {
		name  string
		steps [][2]string
	}{{"ok/docs order", docs}, {"ok/reverse order", reversed}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			challenge := ln.Addr().String() // acme.http.port, where pebble validates
			ln.Close()
			_, port, _ := net.SplitHostPort(challenge)
			httpPort, _ := strconv.Atoi(port)
			pebble := startPebble(t, httpPort)
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", ACMEHTTPClient: pebble.client, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			s := newServer(t, d, nil)
			cli := cliEnv{conf: t.TempDir(), s: s}
			old := d.Fingerprint()
			values := map[string]string{"acme.domain": "localhost", "acme.ca_url": pebble.dirURL, "acme.http.port": challenge}
			for _, step := range tc.steps {
				value, ok := values[step[0]]
				if !ok {
					value = step[1]
				}
				if out, errOut, err := cli.run(t, "config", "set", step[0], value); err != nil {
					t.Fatalf("config set %s %s: %v\n%s%s", step[0], value, err, out, errOut)
				}
			}
			for d.Fingerprint() == old {
				select {
				case <-ctx.Done():
					t.Fatalf("no certificate 60 s after the keys were set one by one; last step %+v", d.Model().LastRenewal())
				case <-time.After(50 * time.Millisecond):
				}
			}
			// Nothing failed on the way: an incomplete configuration is
			// not a CA failure.
			recs, err := d.Store().Read(ctx, 1, s.lastSeq(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				env, _ := events.Decode(rec.Raw)
				if p, err := env.Payload(); err == nil {
					if r, ok := p.(*events.ACMERenewal); ok && r.Outcome == events.RenewalFailed {
						t.Errorf("renewal step %d failed: %s", rec.Seq, r.Error)
					}
				}
			}
		})
	}
}

// TestACMESensitiveKeys: acme.eab.hmac is sealed before it is recorded,
// shown as SENSITIVE, kept when a client sends SENSITIVE back, and
// validated first.
func TestACMESensitiveKeys(t *testing.T) {
	t.Parallel()
	s := start(t)
	const hmac = "c2VjcmV0LWhtYWMta2V5LWZvci1lYWI"
	if code, env := s.configure(t, map[string]string{"acme.eab.kid": "kid-1", "acme.eab.hmac": hmac}); code != 200 {
		t.Fatalf("set EAB: %d %s", code, env.Error)
	}
	var srv api.Server
	_, env := s.call(t, "GET", "/1.0", nil)
	_ = json.Unmarshal(env.Metadata, &srv)
	if srv.Config["acme.eab.hmac"] != "SENSITIVE" || srv.Config["acme.eab.kid"] != "kid-1" {
		t.Errorf("config shown: %v", srv.Config)
	}
	stored := s.d.Model().ConfigValue("acme.eab.hmac")
	if stored == hmac || stored == "" {
		t.Fatalf("acme.eab.hmac recorded as %q", stored)
	}
	// A PUT of what GET returned (as `incus config set` does) keeps it.
	srv.Config["user.other"] = "x"
	if code, env := s.call(t, "PUT", "/1.0", api.ServerPut{Config: srv.Config}); code != 200 {
		t.Fatalf("PUT back: %d %s", code, env.Error)
	}
	if got := s.d.Model().ConfigValue("acme.eab.hmac"); got != stored {
		t.Error("PUT with SENSITIVE changed the sealed value")
	}
	if code, _ := s.configure(t, map[string]string{"acme.eab.hmac": "not base64 !"}); code != 400 {
		t.Errorf("bad HMAC: %d, want 400", code)
	}
	s.secrets = append(s.secrets, hmac) // the stream scan checks it never appears
}

// lastScheduledReason returns the reason of the last scheduled renewal in
// the stream.
func lastScheduledReason(t *testing.T, s *server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := s.d.Store().Read(ctx, 1, s.lastSeq(t))
	if err != nil {
		t.Fatal(err)
	}
	reason := ""
	for _, rec := range recs {
		env, _ := events.Decode(rec.Raw)
		if p, err := env.Payload(); err == nil {
			if r, ok := p.(*events.ACMERenewal); ok && r.Outcome == events.RenewalScheduled {
				reason = r.Reason
			}
		}
	}
	return reason
}
