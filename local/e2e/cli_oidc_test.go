package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/cli/command"
	"github.com/trustlog/trustlog/cli/config"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/internal/oidctest"
	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// cliEnv runs the trustlog CLI in process with its own configuration
// directory and BROWSER=curl (the test provider approves on visit).
type cliEnv struct {
	conf string
	s    *server
}

func (c cliEnv) getenv(k string) string {
	switch k {
	case "TRUSTLOG_CONF":
		return c.conf
	case "TRUSTLOG_DIR":
		return filepath.Dir(c.s.d.UnixSocket())
	case "HOME":
		return c.conf
	case "BROWSER":
		return "curl -s"
	}
	return ""
}

func (c cliEnv) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := command.Run(ctx, args, strings.NewReader(""), &out, &errOut, c.getenv)
	return out.String(), errOut.String(), err
}

// TestCLIOIDC: `trustlog remote add --auth-type oidc` logs in with the
// device flow against the real provider; an expired access token is
// refreshed silently; a refused refresh falls back to the device flow; two
// CLI processes refreshing at once both keep working.
func TestCLIOIDC(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, oidctest.Options{AccessTTL: 2 * time.Second, PollInterval: time.Second})
	p.SetUser(t, "dana")
	s := start(t)
	s.enableOIDC(t, p, nil)
	cli := cliEnv{conf: t.TempDir(), s: s}
	addr := "https://" + s.d.HTTPSAddr()

	if _, _, err := cli.run(t, "remote", "add", "bad", addr, "--accept-certificate", "--auth-type", "kerberos"); err == nil {
		t.Error("an unknown auth type was accepted")
	}
	out, errOut, err := cli.run(t, "remote", "add", "o", addr, "--accept-certificate", "--auth-type", "oidc")
	if err != nil {
		t.Fatalf("remote add --auth-type oidc: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "URL: ") || !strings.Contains(errOut, "Code: ") || !strings.Contains(out, "Logged in to o as dana") {
		t.Errorf("device flow output:\n%s\n%s", out, errOut)
	}
	tokFile := filepath.Join(cli.conf, "oidctokens", "o.json")
	st, err := os.Stat(tokFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	if dst, _ := os.Stat(filepath.Dir(tokFile)); dst.Mode().Perm() != 0o700 {
		t.Errorf("token directory mode %v", dst.Mode().Perm())
	}
	first, _ := config.LoadOIDCTokens(tokFile)
	if first.AccessToken == "" || first.RefreshToken == "" {
		t.Fatalf("stored tokens lack an access or refresh token")
	}
	if strings.Contains(out+errOut, first.AccessToken) || strings.Contains(out+errOut, first.RefreshToken) {
		t.Error("token text printed")
	}
	query := func() (api.Server, string) {
		out, errOut, err := cli.run(t, "query", "o:/1.0")
		if err != nil {
			t.Fatalf("query: %v\n%s", err, errOut)
		}
		var srv api.Server
		_ = json.Unmarshal([]byte(out), &srv)
		return srv, errOut
	}
	if srv, _ := query(); srv.Auth != "trusted" || srv.AuthUserMethod != "oidc" || srv.AuthUserName != "dana" {
		t.Fatalf("query o:/1.0 = %+v", srv)
	}

	// The access token expires (2 s); the next call refreshes silently.
	waitPast(t, jwtExpiry(t, first.AccessToken))
	srv, errOut := query()
	second, _ := config.LoadOIDCTokens(tokFile)
	if srv.Auth != "trusted" || strings.Contains(errOut, "URL: ") || second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Errorf("after expiry: auth %q, device flow ran: %v, token renewed: %v, refresh rotated: %v",
			srv.Auth, strings.Contains(errOut, "URL: "), second.AccessToken != first.AccessToken, second.RefreshToken != first.RefreshToken)
	}

	// Two CLI processes find the token expired at once: one refreshes, the
	// other uses its result (a second refresh with the rotated token would
	// fail and fall back to the device flow).
	bin := toolbin.Build(t, ".", toolbin.Module+"/cli", "trustlog-e2e")
	waitPast(t, jwtExpiry(t, second.AccessToken))
	var wg sync.WaitGroup
	outs := make([]string, 2)
	for i := range 2 {
		wg.Go(func() {
			cmd := exec.Command(bin, "query", "o:/1.0")
			cmd.Env = append(os.Environ(), "TRUSTLOG_CONF="+cli.conf, "TRUSTLOG_DIR="+filepath.Dir(s.d.UnixSocket()), "HOME="+cli.conf, "BROWSER=curl -s")
			b, err := cmd.CombinedOutput()
			outs[i] = string(b)
			if err != nil {
				outs[i] += "\nerror: " + err.Error()
			}
		})
	}
	wg.Wait()
	for i, o := range outs {
		if !strings.Contains(o, `"auth": "trusted"`) || strings.Contains(o, "URL: ") || strings.Contains(o, "error:") {
			t.Errorf("process %d:\n%s", i, o)
		}
	}

	// A refused refresh (the stored refresh token is no longer valid) falls
	// back to the device flow.
	third, _ := config.LoadOIDCTokens(tokFile)
	third.RefreshToken = "revoked-by-the-provider"
	if err := config.SaveOIDCTokens(tokFile, third); err != nil {
		t.Fatal(err)
	}
	waitPast(t, jwtExpiry(t, third.AccessToken))
	if srv, errOut := query(); srv.Auth != "trusted" || !strings.Contains(errOut, "URL: ") {
		t.Errorf("after a refused refresh: auth %q, device flow ran: %v", srv.Auth, strings.Contains(errOut, "URL: "))
	}

	// Removing the remote removes its tokens.
	if _, errOut, err := cli.run(t, "remote", "remove", "o"); err != nil {
		t.Fatalf("remote remove: %v %s", err, errOut)
	}
	if _, err := os.Stat(tokFile); !os.IsNotExist(err) {
		t.Errorf("token file after remote remove: %v", err)
	}
}

// jwtExpiry reads the exp claim of a JWT access token (the server checks
// it; the token file's expiry comes from expires_in, rounded down).
func jwtExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatal("the access token is not a JWT")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Exp int64 }
	if err := json.Unmarshal(raw, &c); err != nil || c.Exp == 0 {
		t.Fatalf("access token claims: %v", err)
	}
	return time.Unix(c.Exp, 0)
}

// waitPast waits until the wall clock is past t (an access token's expiry,
// a few seconds at most here), bounded.
func waitPast(t *testing.T, at time.Time) {
	t.Helper()
	d := time.Until(at) + time.Second // exp is checked to the second
	if d > 10*time.Second {
		t.Fatalf("token expiry %v is too far away", at)
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLIMonitor: `trustlog monitor` replays from --since, filters by type,
// follows new changes, and reports bad parameters clearly.
func TestCLIMonitor(t *testing.T) {
	t.Parallel()
	s := start(t)
	cli := cliEnv{conf: t.TempDir(), s: s}
	_, a := newCert(t, "", "alice")
	s.trust(t, a, "alice")
	if _, errOut, err := cli.run(t, "monitor", "--since", "999"); err == nil || !strings.Contains(err.Error(), "past the end of the stream") {
		t.Errorf("monitor --since 999: %v %s", err, errOut)
	}
	if _, _, err := cli.run(t, "monitor", "--type", "certificate.exploded"); err == nil || !strings.Contains(err.Error(), "Unknown event type") {
		t.Errorf("monitor --type certificate.exploded: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- command.Run(ctx, []string{"monitor", "--since", "1", "--type", "certificate.trusted,certificate.removed"}, strings.NewReader(""), &out, &out, cli.getenv)
	}()
	_, b := newCert(t, "", "bob")
	s.trust(t, b, "bob")
	s.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(a), nil)
	for !strings.Contains(out.String(), "certificate.removed.v1") {
		select {
		case err := <-done:
			t.Fatalf("monitor stopped: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("monitor output after 20 s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("monitor after interrupt: %v", err)
	}
	got := out.String()
	for _, want := range []string{"trustlog.cert." + fingerprintOf(a), "trustlog.cert." + fingerprintOf(b), "(unix)"} {
		if !strings.Contains(got, want) {
			t.Errorf("monitor output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "certificate.trusted.v1") != 2 || strings.Contains(got, "config.changed") {
		t.Errorf("monitor output:\n%s", got)
	}
}

// TestCLIMonitorSinceZero: `trustlog monitor --since 0` starts from the
// first event, as --since 1 does, instead of refusing 0.
func TestCLIMonitorSinceZero(t *testing.T) {
	t.Parallel()
	s := start(t)
	cli := cliEnv{conf: t.TempDir(), s: s}
	_, a := newCert(t, "", "alice")
	s.trust(t, a, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- command.Run(ctx, []string{"monitor", "--since", "0", "-f", "json", "--type", "certificate.trusted"}, strings.NewReader(""), &out, &out, cli.getenv)
	}()
	for !strings.Contains(out.String(), fingerprintOf(a)) {
		select {
		case err := <-done:
			t.Fatalf("monitor --since 0 stopped: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("monitor --since 0 output after 20 s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("monitor after interrupt: %v", err)
	}
}
