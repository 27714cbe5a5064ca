package config_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/trustlog/trustlog/cli/config"
)

func TestLoadMissingIsDefault(t *testing.T) {
	t.Parallel()
	c, err := config.Load(filepath.Join(t.TempDir(), "none"), "/run/t.socket")
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRemote != config.LocalRemote {
		t.Errorf("DefaultRemote = %q, want local", c.DefaultRemote)
	}
	if diff := cmp.Diff([]string{"local"}, c.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	local, ok := c.Remote(config.LocalRemote)
	if !ok || local.Addr != "unix:///run/t.socket" {
		t.Errorf("local remote = %+v, %v", local, ok)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "conf")
	c, err := config.Load(dir, "/s")
	if err != nil {
		t.Fatal(err)
	}
	c.Remotes["srv"] = config.Remote{Addr: "https://192.0.2.1:8443", Protocol: "incus", AuthType: "tls"}
	c.Remotes["pub"] = config.Remote{Addr: "https://example.com:8443", Protocol: "incus", Public: true}
	c.DefaultRemote = "srv"
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	want := `default-remote: srv
remotes:
    pub:
        addr: https://example.com:8443
        protocol: incus
        public: true
    srv:
        addr: https://192.0.2.1:8443
        protocol: incus
        auth_type: tls
        public: false
`
	if diff := cmp.Diff(want, string(raw)); diff != "" {
		t.Errorf("config.yml (-want +got):\n%s", diff)
	}
	back, err := config.Load(dir, "/s")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back, cmpopts.IgnoreUnexported(config.Config{})); diff != "" {
		t.Errorf("round trip (-saved +loaded):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"local", "pub", "srv"}, back.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
}

func TestLoadDropsPersistedLocal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yml := "default-remote: local\nremotes:\n  local:\n    addr: https://203.0.113.9:8443\n"
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(dir, "/run/real.socket")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Remote(config.LocalRemote); r.Addr != "unix:///run/real.socket" {
		t.Errorf("local remote = %q, want the static unix socket", r.Addr)
	}
}

func TestLoadInvalidYAML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte("remotes: [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(dir, "/s"); err == nil || !strings.Contains(err.Error(), "config.yml") {
		t.Errorf("Load of invalid YAML: err = %v", err)
	}
}

func TestValidateRemoteName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		fail     bool
	}{
		{name: "ok/plain", in: "srv"},
		{name: "ok/dots and dashes", in: "my-server.example"},
		{name: "fail/empty", in: "", fail: true},
		{name: "fail/colon", in: "a:b", fail: true},
		{name: "fail/slash", in: "../x", fail: true},
		{name: "fail/backslash", in: `a\b`, fail: true},
		{name: "fail/dot", in: ".", fail: true},
		{name: "fail/dotdot", in: "..", fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := config.ValidateRemoteName(tc.in); (err != nil) != tc.fail {
				t.Errorf("ValidateRemoteName(%q) = %v", tc.in, err)
			}
		})
	}
}

func TestParseRemote(t *testing.T) {
	t.Parallel()
	c, err := config.Load(t.TempDir(), "/s")
	if err != nil {
		t.Fatal(err)
	}
	c.Remotes["srv"] = config.Remote{Addr: "https://192.0.2.1:8443"}
	c.DefaultRemote = "srv"
	for _, tc := range []struct {
		name, in, remote, rest string
		fail                   bool
	}{
		{name: "ok/no remote", in: "/1.0", remote: "srv", rest: "/1.0"},
		{name: "ok/local", in: "local:/1.0", remote: "local", rest: "/1.0"},
		{name: "ok/remote only", in: "srv:", remote: "srv", rest: ""},
		{name: "fail/unknown", in: "nope:/1.0", fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			remote, rest, err := c.ParseRemote(tc.in)
			if (err != nil) != tc.fail {
				t.Fatalf("ParseRemote(%q) err = %v", tc.in, err)
			}
			if remote != tc.remote || rest != tc.rest {
				t.Errorf("ParseRemote(%q) = %q, %q; want %q, %q", tc.in, remote, rest, tc.remote, tc.rest)
			}
		})
	}
}

func TestClientCertificate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "conf")
	c, err := config.Load(dir, "/s")
	if err != nil {
		t.Fatal(err)
	}
	var notice bytes.Buffer
	pair, err := c.ClientCertificate(&notice)
	if err != nil {
		t.Fatal(err)
	}
	if got := notice.String(); got != "Generating a client certificate. This may take a minute...\n" {
		t.Errorf("notice = %q", got)
	}
	crtPath, keyPath := c.ClientCertPaths()
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("client.key mode = %v, want 0600", st.Mode().Perm())
	}
	rawKey, _ := os.ReadFile(keyPath)
	if b, _ := pem.Decode(rawKey); b == nil || b.Type != "EC PRIVATE KEY" {
		t.Errorf("client.key is not an EC PRIVATE KEY PEM block")
	}
	rawCrt, _ := os.ReadFile(crtPath)
	b, _ := pem.Decode(rawCrt)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatal("client.crt is not a CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		t.Errorf("client key is %T, want ECDSA P-384", cert.PublicKey)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.ExtKeyUsage); diff != "" {
		t.Errorf("EKU (-want +got):\n%s", diff)
	}
	if user, host, ok := strings.Cut(cert.Subject.CommonName, "@"); !ok || user == "" || host == "" {
		t.Errorf("CN = %q, want user@host", cert.Subject.CommonName)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil || !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		t.Errorf("not self-signed: %v", err)
	}
	if !bytes.Equal(pair.Leaf.Raw, cert.Raw) {
		t.Error("returned pair is not the written certificate")
	}

	// The second call loads the same pair and says nothing.
	notice.Reset()
	again, err := c.ClientCertificate(&notice)
	if err != nil {
		t.Fatal(err)
	}
	if notice.Len() != 0 || !bytes.Equal(again.Leaf.Raw, cert.Raw) {
		t.Errorf("second call: notice %q, same certificate %v", notice.String(), bytes.Equal(again.Leaf.Raw, cert.Raw))
	}
}

func TestServerCertPinning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := config.Load(dir, "/s")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.ServerCert("srv"); got != nil || err != nil {
		t.Fatalf("ServerCert before pinning = %v, %v; want nil, nil", got, err)
	}
	pair, err := c.ClientCertificate(&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SaveServerCert("srv", pair.Leaf); err != nil {
		t.Fatal(err)
	}
	got, err := c.ServerCert("srv")
	if err != nil || got == nil || !bytes.Equal(got.Raw, pair.Leaf.Raw) {
		t.Fatalf("ServerCert = %v, %v", got, err)
	}
	if c.ServerCertPath("srv") != filepath.Join(dir, "servercerts", "srv.crt") {
		t.Errorf("ServerCertPath = %q", c.ServerCertPath("srv"))
	}
	if err := os.WriteFile(c.ServerCertPath("bad"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServerCert("bad"); err == nil {
		t.Error("ServerCert of a file without PEM succeeded")
	}
}

func TestClientCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := config.Load(dir, "/s")
	if err != nil {
		t.Fatal(err)
	}
	if pool, err := c.ClientCA(); pool != nil || err != nil {
		t.Fatalf("ClientCA without client.ca = %v, %v", pool, err)
	}
	pair, err := c.ClientCertificate(&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Leaf.Raw})
	if err := os.WriteFile(c.ClientCAPath(), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pool, err := c.ClientCA()
	if err != nil || pool == nil {
		t.Fatalf("ClientCA = %v, %v", pool, err)
	}
	if err := os.WriteFile(c.ClientCAPath(), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClientCA(); err == nil {
		t.Error("ClientCA of junk succeeded")
	}
}
