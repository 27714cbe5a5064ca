package command_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/cli/command"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// cliEnv is one user of the CLI: a configuration directory and the data
// directory of the daemon whose unix socket is the "local" remote.
type cliEnv struct {
	conf, data string
}

func (c cliEnv) getenv(k string) string {
	switch k {
	case "TRUSTLOG_CONF":
		return c.conf
	case "TRUSTLOG_DIR":
		return c.data
	case "HOME":
		return filepath.Dir(c.conf)
	}
	return ""
}

// run runs the CLI with stdin and returns its stdout and stderr.
func (c cliEnv) run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := command.Run(ctx, args, strings.NewReader(stdin), &out, &errOut, c.getenv)
	return out.String(), errOut.String(), err
}

func (c cliEnv) mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := c.run(t, stdin, args...)
	if err != nil {
		t.Fatalf("trustlog %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func startDaemon(t *testing.T, dir string) *daemon.Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: dir, HTTPSAddress: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// writeCert writes a fresh self-signed P-384 client certificate and key.
func writeCert(t *testing.T, dir, cn string) (crt, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(k)
	crt, key = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return crt, key
}

func TestRemoteAddTrustListRemove(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
	url := "https://" + d.HTTPSAddr()

	// Interactive: confirm the fingerprint, then paste a token at the prompt.
	tok := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "laptop", "-q"))
	out, errOut, err := user.run(t, "y\n"+tok+"\n", "remote", "add", "srv", url)
	if err != nil {
		t.Fatalf("remote add: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "Certificate fingerprint: "+d.Fingerprint()) || !strings.Contains(out, "Client certificate now trusted by server: srv") {
		t.Errorf("remote add output:\n%s", out)
	}
	if !strings.Contains(errOut, "ok (y/n/[fingerprint])? ") || !strings.Contains(errOut, "Trust token for srv: ") {
		t.Errorf("prompts missing from stderr:\n%s", errOut)
	}
	info := user.mustRun(t, "", "info", "srv:")
	if !strings.Contains(info, "auth: trusted") || !strings.Contains(info, "auth_user_method: tls") {
		t.Errorf("info srv:\n%s", info)
	}
	// info prints exactly the server object GET /1.0 returns.
	var fromInfo, fromQuery any
	if err := yaml.Unmarshal([]byte(info), &fromInfo); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(user.mustRun(t, "", "query", "srv:/1.0")), &fromQuery); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(viaJSON(t, fromQuery), viaJSON(t, fromInfo)); diff != "" {
		t.Errorf("info against query /1.0 (-query +info):\n%s", diff)
	}

	// The admin sees the entry; the user's certificate fingerprint is in it.
	csv := admin.mustRun(t, "", "config", "trust", "list", "--format", "csv")
	if !strings.HasPrefix(csv, "laptop,client,") {
		t.Fatalf("trust list csv:\n%s", csv)
	}
	fp := strings.Split(csv, ",")[3]
	show := admin.mustRun(t, "", "config", "trust", "show", fp[:12])
	if !strings.Contains(show, "name: laptop") || !strings.Contains(show, "fingerprint: "+fp) {
		t.Errorf("trust show:\n%s", show)
	}
	// Edit from stdin (not a terminal): rename the entry.
	admin.mustRun(t, strings.Replace(show, "name: laptop", "name: renamed", 1), "config", "trust", "edit", fp)
	if got := admin.mustRun(t, "", "config", "trust", "list", "-f", "csv"); !strings.HasPrefix(got, "renamed,") {
		t.Errorf("after edit: %s", got)
	}

	// Removing the entry locks the user out at the next request.
	admin.mustRun(t, "", "config", "trust", "remove", fp)
	_, _, err = user.run(t, "", "config", "trust", "list", "srv:")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || apiErr.Message != "not authorized" {
		t.Fatalf("removed client: err = %v, want 403 not authorized", err)
	}
	if info := user.mustRun(t, "", "info", "srv:"); !strings.Contains(info, "auth: untrusted") {
		t.Errorf("removed client info:\n%s", info)
	}
}

func TestRemoteAddWithToken(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}

	tok := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "ci-runner", "--restricted", "--projects", "web", "-q"))
	if _, _, err := user.run(t, "", "remote", "add", "s", tok, "--accept-certificate"); err == nil {
		t.Fatal("a token together with --accept-certificate was accepted")
	}
	if list := admin.mustRun(t, "", "config", "trust", "list-tokens", "-f", "csv"); !strings.HasPrefix(list, "ci-runner,"+tok+",") {
		t.Errorf("list-tokens:\n%s", list)
	}
	out := user.mustRun(t, "", "remote", "add", "s", tok)
	if !strings.Contains(out, "Client certificate now trusted by server: s") {
		t.Errorf("remote add <token>: %s", out)
	}
	pinned, err := os.ReadFile(filepath.Join(user.conf, "servercerts", "s.crt"))
	if err != nil || !strings.Contains(string(pinned), "BEGIN CERTIFICATE") {
		t.Fatalf("server certificate not pinned: %v", err)
	}
	if info := user.mustRun(t, "", "info", "s:"); !strings.Contains(info, "auth: trusted") {
		t.Errorf("info:\n%s", info)
	}
	entry := admin.mustRun(t, "", "config", "trust", "list", "-f", "yaml")
	if !strings.Contains(entry, "name: ci-runner") || !strings.Contains(entry, "restricted: true") || !strings.Contains(entry, "- web") {
		t.Errorf("entry made by the token:\n%s", entry)
	}
	// Single use: the token is gone and cannot trust another client.
	if list := admin.mustRun(t, "", "config", "trust", "list-tokens", "-f", "csv"); list != "" {
		t.Errorf("token still listed: %s", list)
	}
	other := cliEnv{conf: filepath.Join(t.TempDir(), "other"), data: t.TempDir()}
	if _, _, err := other.run(t, "", "remote", "add", "s", tok); err == nil || !strings.Contains(err.Error(), "No matching certificate add operation found") {
		t.Errorf("reused token: err = %v", err)
	}

	// A revoked token fails too.
	tok2 := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "later", "-q"))
	if out := admin.mustRun(t, "", "config", "trust", "revoke-token", "later"); !strings.Contains(out, "Certificate add token for later deleted") {
		t.Errorf("revoke-token: %s", out)
	}
	if _, _, err := other.run(t, "", "remote", "add", "s2", tok2); err == nil {
		t.Error("revoked token accepted")
	}
	_ = d
}

func TestServerCertificateChanged(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
	user.mustRun(t, "", "remote", "add", "srv", "https://"+d.HTTPSAddr(), "--accept-certificate", "--token",
		strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "u", "-q")))
	old := d.Fingerprint()

	// Restart keeps the trust store (replayed from the log) …
	d.Close()
	d = startDaemon(t, data)
	user.mustRun(t, "", "remote", "set-url", "srv", "https://"+d.HTTPSAddr()) // port 0 picked another port
	if info := user.mustRun(t, "", "info", "srv:"); !strings.Contains(info, "auth: trusted") {
		t.Fatalf("after restart:\n%s", info)
	}
	if list := admin.mustRun(t, "", "config", "trust", "list", "-c", "n", "-f", "csv"); list != "u\n" {
		t.Errorf("trust store after restart: %q, want the entry u", list)
	}
	// … but a new server certificate is refused with both fingerprints.
	addr := d.HTTPSAddr()
	d.Close()
	os.Remove(filepath.Join(data, "server.crt"))
	os.Remove(filepath.Join(data, "server.key"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d2, err := daemon.Start(ctx, daemon.Config{Dir: data, HTTPSAddress: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	user.mustRun(t, "", "remote", "set-url", "srv", "https://"+d2.HTTPSAddr())
	_, _, err = user.run(t, "", "info", "srv:")
	var mismatch *client.CertMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("changed certificate: err = %v, want a mismatch error", err)
	}
	if mismatch.Pinned != old || mismatch.Presented != d2.Fingerprint() || !strings.Contains(err.Error(), "trustlog remote remove srv") {
		t.Errorf("mismatch error = %q", err)
	}
}

func TestTrustAddFileAndConfig(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	crt, _ := writeCert(t, t.TempDir(), "alice")
	admin.mustRun(t, "", "config", "trust", "add", crt, "--name", "alice", "--restricted", "--projects", "a,b")
	if _, _, err := admin.run(t, "", "config", "trust", "add", crt, "--projects", "x"); err == nil {
		t.Error("--projects without --restricted accepted")
	}
	y := admin.mustRun(t, "", "config", "trust", "list", "--format", "json")
	if !strings.Contains(y, `"name": "alice"`) || !strings.Contains(y, `"restricted": true`) {
		t.Errorf("json list:\n%s", y)
	}
	admin.mustRun(t, "", "config", "set", "user.team", "blue")
	admin.mustRun(t, "", "config", "set", "local:", "user.x=1", "user.y=2")
	if got := strings.TrimSpace(admin.mustRun(t, "", "config", "get", "user.team")); got != "blue" {
		t.Errorf("config get = %q", got)
	}
	admin.mustRun(t, "", "config", "unset", "user.team")
	show := admin.mustRun(t, "", "config", "show")
	if strings.Contains(show, "user.team") || !strings.Contains(show, "user.y: \"2\"") {
		t.Errorf("config show:\n%s", show)
	}
	if _, _, err := admin.run(t, "", "config", "set", "core.bogus", "1"); err == nil || !strings.Contains(err.Error(), "unknown configuration key") {
		t.Errorf("unknown key: %v", err)
	}
	q := admin.mustRun(t, "", "query", "/1.0/certificates")
	if !strings.Contains(q, `"/1.0/certificates/`) {
		t.Errorf("query:\n%s", q)
	}
}

// TestTokenWrongFingerprint: a token whose fingerprint is not the server's
// is refused by the CLI before it is sent, so the token stays usable.
func TestTokenWrongFingerprint(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
	raw := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "x", "-q"))
	tok, err := api.DecodeCertificateAddToken(raw)
	if err != nil {
		t.Fatal(err)
	}
	tok.Fingerprint = strings.Repeat("ab", 32)
	_, _, err = user.run(t, "", "remote", "add", "s", tok.Encode())
	if err == nil || !strings.Contains(err.Error(), "Certificate fingerprint mismatch") || !strings.Contains(err.Error(), tok.Fingerprint) {
		t.Fatalf("wrong fingerprint: err = %v", err)
	}
	if list := admin.mustRun(t, "", "config", "trust", "list-tokens", "-f", "csv"); !strings.HasPrefix(list, "x,") {
		t.Errorf("token consumed by a refused attempt: %q", list)
	}
}

// TestGetClientToken: the JWT the CLI makes from its key authenticates a
// request that presents no client certificate.
func TestGetClientToken(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
	user.mustRun(t, "", "remote", "add", "s", strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "jwt", "-q")))
	jwt := strings.TrimSpace(user.mustRun(t, "", "remote", "get-client-token", "10M"))
	if _, _, err := user.run(t, "", "remote", "get-client-token", "soon"); err == nil {
		t.Error("bad duration accepted")
	}
	c, err := client.New(client.Options{Addr: "https://" + d.HTTPSAddr(), Pinned: mustPinned(t, user)})
	if err != nil {
		t.Fatal(err)
	}
	req := "/1.0?access_token=" + jwt
	var srv api.Server
	if _, err := c.Get(context.Background(), req, &srv); err != nil {
		t.Fatal(err)
	}
	if srv.Auth != "trusted" || srv.AuthUserMethod != "tls" {
		t.Errorf("with the client token: %+v", srv)
	}
}

func mustPinned(t *testing.T, c cliEnv) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.conf, "servercerts", "s.crt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	x, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// viaJSON normalises a decoded document (from YAML or JSON) to what JSON
// makes of it, so that both compare equal.
func viaJSON(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
