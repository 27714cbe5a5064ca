package command_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/local/daemon"
)

// userOf adds remote s to a fresh CLI configuration with a trust token
// the admin issues, and returns that user and the fingerprint of the
// trust entry it made.
func userOf(t *testing.T, admin cliEnv, name string) (cliEnv, string) {
	t.Helper()
	user := cliEnv{conf: filepath.Join(t.TempDir(), name), data: t.TempDir()}
	tok := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", name, "-q"))
	user.mustRun(t, "", "remote", "add", "s", tok)
	return user, clientFingerprint(t, user)
}

// clientFingerprint is the fingerprint of a user's client certificate.
func clientFingerprint(t *testing.T, c cliEnv) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(c.conf, "client.crt"), filepath.Join(c.conf, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return client.Fingerprint(pair.Leaf)
}

// TestWhoamiExplainsUntrusted: a client whose trust entry was removed
// gets, from `auth whoami --explain`, what it can see for itself and what
// to do; following the advice makes it trusted again.
func TestWhoamiExplainsUntrusted(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user, fp := userOf(t, admin, "laptop")
	if out := user.mustRun(t, "", "auth", "whoami", "s:"); !strings.Contains(out, "Name: laptop\n") {
		t.Fatalf("whoami while trusted:\n%s", out)
	}
	admin.mustRun(t, "", "config", "trust", "remove", fp)

	_, _, err := user.run(t, "", "auth", "whoami", "s:")
	if want := "not authorized (`trustlog auth whoami --explain` says why)"; err == nil || err.Error() != want {
		t.Errorf("whoami untrusted: err = %v, want %q", err, want)
	}
	out, _, err := user.run(t, "", "auth", "whoami", "s:", "--explain")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Errorf("whoami --explain untrusted: err = %v, want the 403", err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(user.conf, "client.crt"), filepath.Join(user.conf, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	normal := strings.NewReplacer(fp, "<client-fingerprint>", d.Fingerprint(), "<server-fingerprint>",
		d.HTTPSAddr(), "<address>", user.conf, "<conf>", pair.Leaf.Subject.String(), "<subject>").Replace(out)
	golden(t, "whoami-explain-untrusted.txt", regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(normal, "<time>"))

	// The advice works: a new token, redeemed for this remote with query.
	tok := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "laptop-again", "-q"))
	user.mustRun(t, "", "query", "s:/1.0/certificates", "-X", "POST", "-d", `{"type":"client","trust_token":"`+tok+`"}`)
	if out := user.mustRun(t, "", "auth", "whoami", "s:"); !strings.Contains(out, "Name: laptop-again\n") {
		t.Errorf("whoami after redeeming a new token:\n%s", out)
	}
}

// TestWhoamiExplainsExpired: a client certificate past its notAfter is
// named as the reason, with how to make a new one.
func TestWhoamiExplainsExpired(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user, _ := userOf(t, admin, "old")
	notAfter := writeExpiredPair(t, user.conf)

	out, _, err := user.run(t, "", "auth", "whoami", "s:", "--explain", "-f", "yaml")
	if err == nil || err.Error() != "not authorized" {
		t.Errorf("whoami --explain expired: err = %v, want not authorized", err)
	}
	for _, want := range []string{
		"refused: not authorized",
		"The certificate expired on " + notAfter.UTC().Format(time.RFC3339),
		"The server answers GET /1.0 with auth: untrusted (it saw a client certificate)",
		"Make a new certificate: move " + filepath.Join(user.conf, "client.crt"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("whoami --explain -f yaml lacks %q:\n%s", want, out)
		}
	}
}

// TestWhoamiExplainsStale: an instance that will not vouch for its trust
// store (here, a broken log) is named as the reason, not the client.
func TestWhoamiExplainsStale(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: data, HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	user, _ := userOf(t, admin, "u")

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("trustlog.config.forged", []byte(`{"not":"an envelope"}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	seq, err := d.Store().LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon refuses once its projector has met the record.
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _, err = user.run(t, "", "auth", "whoami", "s:", "--explain")
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.Status == 503 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		"The server answered 503: Service unavailable: the event log is broken at sequence " + strconv.FormatUint(seq, 10),
		"This says nothing about your certificate.",
		"Try again later",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("whoami --explain on a broken log lacks %q:\n%s", want, out)
		}
	}
}

// writeExpiredPair replaces the client certificate and key in conf with a
// pair that expired a day ago, and returns its notAfter.
func writeExpiredPair(t *testing.T, conf string) time.Time {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "client.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "client.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return notAfter
}
