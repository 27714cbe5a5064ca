package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/cli/command"
	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// incus is the stock incus client with its own HOME and INCUS_CONF.
type incus struct {
	bin  string
	env  []string
	conf string
}

func newIncus(t *testing.T) *incus {
	t.Helper()
	bin := toolbin.Incus(t)
	env := toolbin.IncusEnv(t)
	conf := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "INCUS_CONF="); ok {
			conf = v
		}
	}
	return &incus{bin: bin, env: env, conf: conf}
}

func (c *incus) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, c.env, "", c.bin, args...)
}

func (c *incus) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("incus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// trustWithCLI runs `trustlog config trust add <crt> --name <name>` against
// the daemon's unix socket (the CLI's static "local" remote), as an admin
// on the host would.
func (s *server) trustWithCLI(t *testing.T, crt, name string) {
	t.Helper()
	conf := t.TempDir()
	getenv := func(k string) string {
		switch k {
		case "TRUSTLOG_CONF":
			return conf
		case "TRUSTLOG_DIR":
			return filepath.Dir(s.d.UnixSocket())
		case "HOME":
			return conf
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := command.Run(ctx, []string{"config", "trust", "add", crt, "--name", name}, strings.NewReader(""), &out, &errOut, getenv); err != nil {
		t.Fatalf("trustlog config trust add: %v\n%s%s", err, out.String(), errOut.String())
	}
}

// TestIncusClientTrustFlow is the foundation issue's interoperability
// check: a certificate trusted by an admin lets the stock client add the
// remote, see itself trusted, list and remove trust entries; the next
// request after removal is refused.
func TestIncusClientTrustFlow(t *testing.T) {
	t.Parallel()
	s := start(t)
	cli := newIncus(t)
	pair, cert := newCert(t, cli.conf, "client")
	s.trustWithCLI(t, filepath.Join(cli.conf, "client.crt"), "incus-client")

	cli.must(t, "remote", "add", "t", "https://"+s.d.HTTPSAddr(), "--accept-certificate")
	var srv struct {
		Auth           string `json:"auth"`
		AuthUserName   string `json:"auth_user_name"`
		AuthUserMethod string `json:"auth_user_method"`
	}
	if err := json.Unmarshal([]byte(cli.must(t, "query", "t:/1.0")), &srv); err != nil {
		t.Fatal(err)
	}
	fp := fingerprintOf(cert)
	if srv.Auth != "trusted" || srv.AuthUserName != fp || srv.AuthUserMethod != "tls" {
		t.Fatalf("incus query t:/1.0 = %+v", srv)
	}
	if info := cli.must(t, "info", "t:"); !strings.Contains(info, "auth: trusted") {
		t.Errorf("incus info:\n%s", info)
	}
	list := cli.must(t, "config", "trust", "list", "t:", "--format", "csv")
	if !strings.Contains(list, "incus-client") || !strings.Contains(list, fp[:12]) {
		t.Errorf("incus config trust list:\n%s", list)
	}
	// incus config set/get go through GET /1.0 and PUT /1.0 with the ETag.
	cli.must(t, "config", "set", "t:", "user.foo", "bar")
	if got := strings.TrimSpace(cli.must(t, "config", "get", "t:", "user.foo")); got != "bar" {
		t.Errorf("incus config get = %q", got)
	}

	cli.must(t, "config", "trust", "remove", "t:", fp)
	out, err := cli.run(t, "config", "trust", "list", "t:")
	if err == nil || !strings.Contains(out, "not authorized") {
		t.Fatalf("after removal: err=%v out=%s", err, out)
	}
	if err := json.Unmarshal([]byte(cli.must(t, "query", "t:/1.0")), &srv); err != nil || srv.Auth != "untrusted" {
		t.Errorf("after removal /1.0 auth = %q (%v)", srv.Auth, err)
	}
	// The same certificate from a Go TLS client gets the 403 envelope.
	code, env := do(t, tlsClient(&pair), http.MethodGet, "https://"+s.d.HTTPSAddr()+"/1.0/certificates", nil)
	if code != http.StatusForbidden || env.Type != "error" || env.ErrorCode != http.StatusForbidden || env.Error != "not authorized" {
		t.Errorf("after removal, Go client: %d %+v", code, env)
	}
}

// TestIncusClientTokens checks trust tokens with the stock client both
// ways: a Trustlog-issued token redeemed by `incus remote add <token>`, and
// tokens issued, listed and revoked by an admin incus remote.
func TestIncusClientTokens(t *testing.T) {
	t.Parallel()
	s := start(t)
	admin := newIncus(t)
	_, adminCert := newCert(t, admin.conf, "client")
	s.trust(t, adminCert, "admin")
	admin.must(t, "remote", "add", "s", "https://"+s.d.HTTPSAddr(), "--accept-certificate")

	// An admin incus remote issues a token; a second incus client redeems it.
	out := admin.must(t, "config", "trust", "add", "s:newcomer")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tok := lines[len(lines)-1]
	if !strings.Contains(out, "Client newcomer certificate add token:") {
		t.Fatalf("incus config trust add:\n%s", out)
	}
	if list := admin.must(t, "config", "trust", "list-tokens", "s:", "--format", "csv"); !strings.Contains(list, "newcomer") {
		t.Errorf("list-tokens:\n%s", list)
	}
	joiner := newIncus(t)
	joiner.must(t, "remote", "add", "s", tok)
	var srv struct{ Auth string }
	if err := json.Unmarshal([]byte(joiner.must(t, "query", "s:/1.0")), &srv); err != nil || srv.Auth != "trusted" {
		t.Fatalf("after redeeming: auth=%q err=%v", srv.Auth, err)
	}
	if list := admin.must(t, "config", "trust", "list", "s:", "--format", "csv"); !strings.Contains(list, "newcomer") {
		t.Errorf("trust list after redeem:\n%s", list)
	}

	// A revoked token no longer works.
	out = admin.must(t, "config", "trust", "add", "s:late")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	late := lines[len(lines)-1]
	admin.must(t, "config", "trust", "revoke-token", "s:late")
	if list := admin.must(t, "config", "trust", "list-tokens", "s:", "--format", "csv"); strings.Contains(list, "late") {
		t.Errorf("revoked token still listed:\n%s", list)
	}
	third := newIncus(t)
	if out, err := third.run(t, "remote", "add", "s", late); err == nil {
		t.Errorf("revoked token accepted:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(third.conf, "servercerts", "s.crt")); err == nil {
		if out, err := third.run(t, "query", "s:/1.0"); err == nil && strings.Contains(out, `"trusted"`) {
			t.Errorf("client trusted with a revoked token")
		}
	}
}

// trustlogCLI runs the trustlog client with its own configuration
// directory; the "local" remote is the daemon of s.
func trustlogCLI(t *testing.T, s *server, conf string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	getenv := func(k string) string {
		switch k {
		case "TRUSTLOG_CONF":
			return conf
		case "TRUSTLOG_DIR":
			return filepath.Dir(s.d.UnixSocket())
		}
		return ""
	}
	if err := command.Run(ctx, args, strings.NewReader(""), &out, &errOut, getenv); err != nil {
		t.Fatalf("trustlog %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestTokensAcrossClients: a token issued by trustlog is redeemed by the
// stock incus client, and a token issued by an admin incus remote is
// redeemed by `trustlog remote add <token>`.
func TestTokensAcrossClients(t *testing.T) {
	t.Parallel()
	s := start(t)

	// trustlog issues, incus redeems.
	tok := strings.TrimSpace(trustlogCLI(t, s, t.TempDir(), "config", "trust", "add", "--name", "incus-joiner", "-q"))
	joiner := newIncus(t)
	joiner.must(t, "remote", "add", "s", tok)
	var srv struct{ Auth string }
	if err := json.Unmarshal([]byte(joiner.must(t, "query", "s:/1.0")), &srv); err != nil || srv.Auth != "trusted" {
		t.Fatalf("incus after redeeming a trustlog token: auth=%q err=%v", srv.Auth, err)
	}

	// incus (now trusted as an admin) issues, trustlog redeems.
	out := joiner.must(t, "config", "trust", "add", "s:trustlog-joiner")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	incusTok := lines[len(lines)-1]
	conf := t.TempDir()
	if got := trustlogCLI(t, s, conf, "remote", "add", "s", incusTok); !strings.Contains(got, "Client certificate now trusted by server: s") {
		t.Errorf("trustlog remote add <incus token>: %s", got)
	}
	if info := trustlogCLI(t, s, conf, "info", "s:"); !strings.Contains(info, "auth: trusted") {
		t.Errorf("trustlog info after redeeming an incus token:\n%s", info)
	}
}

// TestIncusClientToken: a JWT made by `incus remote get-client-token`
// from its trusted client certificate authenticates a plain HTTPS request.
func TestIncusClientToken(t *testing.T) {
	t.Parallel()
	s := start(t)
	cli := newIncus(t)
	_, cert := newCert(t, cli.conf, "client")
	s.trust(t, cert, "jwt-maker")
	jwt := strings.TrimSpace(cli.must(t, "remote", "get-client-token", "1h"))
	base := "https://" + s.d.HTTPSAddr()
	for _, form := range []string{"header", "query"} {
		req, _ := http.NewRequest("GET", base+"/1.0", nil)
		if form == "header" {
			req.Header.Set("Authorization", "Bearer "+jwt)
		} else {
			req.URL.RawQuery = "access_token=" + jwt
		}
		resp, err := tlsClient(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var full map[string]json.RawMessage
		json.NewDecoder(resp.Body).Decode(&full)
		resp.Body.Close()
		var srv struct {
			Auth           string `json:"auth"`
			AuthUserName   string `json:"auth_user_name"`
			AuthUserMethod string `json:"auth_user_method"`
		}
		json.Unmarshal(full["metadata"], &srv)
		if srv.Auth != "trusted" || srv.AuthUserName != fingerprintOf(cert) || srv.AuthUserMethod != "tls" {
			t.Errorf("%s: %+v", form, srv)
		}
	}
	// A garbage bearer is refused like no credentials at all.
	req, _ := http.NewRequest("GET", base+"/1.0/certificates", nil)
	req.Header.Set("Authorization", "Bearer 1234567")
	resp, err := tlsClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("garbage bearer: %d", resp.StatusCode)
	}
}
