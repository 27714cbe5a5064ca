package e2e_test

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/api"
)

// opensslCert makes a client certificate with the seeds' openssl command.
func opensslCert(t *testing.T, dir, name string, keyArgs ...string) (crt, key string) {
	t.Helper()
	crt, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	args := append([]string{"req", "-x509"}, keyArgs...)
	args = append(args, "-sha384", "-days", "1", "-nodes", "-subj", "/CN="+name, "-keyout", key, "-out", crt)
	if out, err := run(t, os.Environ(), "", "openssl", args...); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	return crt, key
}

func derBase64(t *testing.T, crt string) string {
	t.Helper()
	raw, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	return base64.StdEncoding.EncodeToString(b.Bytes)
}

// curl runs curl against the daemon and decodes the envelope it prints.
func curl(t *testing.T, args ...string) api.Response {
	t.Helper()
	_, env := curlCode(t, args...)
	return env
}

// curlCode runs curl against the daemon and returns the HTTP status and
// the envelope of the body.
func curlCode(t *testing.T, args ...string) (int, api.Response) {
	t.Helper()
	body := filepath.Join(t.TempDir(), "body")
	out, err := run(t, os.Environ(), "", "curl", append([]string{"-sk", "--max-time", "20", "-o", body, "-w", "%{http_code}"}, args...)...)
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	code, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("curl %s: status %q", strings.Join(args, " "), out)
	}
	raw, err := os.ReadFile(body)
	if err != nil {
		t.Fatal(err)
	}
	var env api.Response
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("curl %s: not an envelope: %s", strings.Join(args, " "), raw)
	}
	return code, env
}

func authOf(t *testing.T, env api.Response) string {
	t.Helper()
	var srv api.Server
	if err := json.Unmarshal(env.Metadata, &srv); err != nil {
		t.Fatal(err)
	}
	return srv.Auth
}

// TestCurlOpenSSLFlow runs the seeds' raw API flow: an openssl-made
// certificate is untrusted, an admin adds it over the unix socket, it is
// trusted, it is deleted and refused again.
func TestCurlOpenSSLFlow(t *testing.T) {
	t.Parallel()
	s := start(t)
	dir := t.TempDir()
	base := "https://" + s.d.HTTPSAddr()
	for _, tc := range []struct {
		name    string
		keyArgs []string
	}{
		{name: "ec-p384", keyArgs: []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"}},
		{name: "rsa-2048", keyArgs: []string{"-newkey", "rsa:2048"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crt, key := opensslCert(t, dir, tc.name, tc.keyArgs...)
			who := []string{"--cert", crt, "--key", key}
			if got := authOf(t, curl(t, append(who, base+"/1.0")...)); got != "untrusted" {
				t.Fatalf("before trust: auth %q", got)
			}
			if code, env := curlCode(t, append(who, base+"/1.0/certificates")...); code != 403 || env.Type != "error" || env.ErrorCode != 403 || env.Error != "not authorized" {
				t.Fatalf("untrusted list: %d %+v", code, env)
			}
			body := `{"certificate":"` + derBase64(t, crt) + `","name":"` + tc.name + `"}`
			if code, env := curlCode(t, "--unix-socket", s.d.UnixSocket(), "-X", "POST", "-d", body, "http://unix/1.0/certificates"); code != 201 || env.StatusCode != 200 || env.Type != "sync" {
				t.Fatalf("admin add: %d %+v", code, env)
			}
			if got := authOf(t, curl(t, append(who, base+"/1.0")...)); got != "trusted" {
				t.Fatalf("after trust: auth %q", got)
			}
			var urls []string
			env := curl(t, append(who, base+"/1.0/certificates")...)
			if err := json.Unmarshal(env.Metadata, &urls); err != nil || len(urls) == 0 {
				t.Fatalf("trusted list: %+v", env)
			}
			var fp string
			for _, u := range urls {
				fp = strings.TrimPrefix(u, "/1.0/certificates/")
				var c api.Certificate
				if err := json.Unmarshal(curl(t, append(who, base+u)...).Metadata, &c); err == nil && c.Name == tc.name {
					break
				}
			}
			if env := curl(t, append(who, "-X", "DELETE", base+"/1.0/certificates/"+fp)...); env.StatusCode != 200 {
				t.Fatalf("self delete: %+v", env)
			}
			if code, env := curlCode(t, append(who, base+"/1.0/certificates")...); code != 403 || env.ErrorCode != 403 || env.Error != "not authorized" {
				t.Fatalf("after delete: %d %+v", code, env)
			}
		})
	}
}

// TestTLSVersions checks TLS 1.3 is required: curl limited to 1.2 fails,
// 1.3 works.
func TestTLSVersions(t *testing.T) {
	t.Parallel()
	s := start(t)
	base := "https://" + s.d.HTTPSAddr() + "/1.0"
	// curl exits 35 when the TLS handshake fails.
	out, err := run(t, os.Environ(), "", "curl", "-sk", "--max-time", "10", "--tls-max", "1.2", base)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 35 {
		t.Fatalf("TLS 1.2 client: err=%v, want curl exit 35 (handshake refused)\n%s", err, out)
	}
	if env := curl(t, "--tlsv1.3", base); env.StatusCode != 200 {
		t.Fatalf("TLS 1.3: %+v", env)
	}
}

// TestWeakRSARefused checks an RSA-1024 certificate made by openssl is
// refused at add with the upstream message, and nothing is appended.
func TestWeakRSARefused(t *testing.T) {
	t.Parallel()
	s := start(t)
	crt, _ := opensslCert(t, t.TempDir(), "weak", "-newkey", "rsa:1024")
	before := s.lastSeq(t)
	body := `{"certificate":"` + derBase64(t, crt) + `","name":"weak"}`
	code, env := curlCode(t, "--unix-socket", s.d.UnixSocket(), "-X", "POST", "-d", body, "http://unix/1.0/certificates")
	if code != 400 || env.Type != "error" || env.ErrorCode != 400 || env.Error != "RSA key is too weak (minimum of 2048bit)" {
		t.Fatalf("RSA-1024: %d %+v", code, env)
	}
	if after := s.lastSeq(t); after != before {
		t.Errorf("stream moved from %d to %d on a refused add", before, after)
	}
}

// TestCurlTrustToken is the seeds' raw token flow: an openssl-made RSA
// certificate posts {"trust_token": ...} with curl and becomes trusted.
func TestCurlTrustToken(t *testing.T) {
	t.Parallel()
	s := start(t)
	tok, _ := s.issue(t, api.CertificatesPost{Name: "curl-joiner"})
	crt, key := opensslCert(t, t.TempDir(), "curl-joiner", "-newkey", "rsa:2048")
	base := "https://" + s.d.HTTPSAddr()
	env := curl(t, "--key", key, "--cert", crt, "-X", "POST", base+"/1.0/certificates", "--data", `{"trust_token":"`+tok+`"}`)
	if env.Type != "sync" || env.StatusCode != 200 {
		t.Fatalf("redeem with curl: %+v", env)
	}
	if got := authOf(t, curl(t, "--key", key, "--cert", crt, base+"/1.0")); got != "trusted" {
		t.Fatalf("after redeeming: auth %q", got)
	}
	if env := curl(t, "--key", key, "--cert", crt, "-X", "POST", base+"/1.0/certificates", "--data", `{"trust_token":"`+tok+`"}`); env.ErrorCode != 400 {
		t.Errorf("second use by a trusted client: %+v", env)
	}
}
