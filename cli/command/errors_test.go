package command_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrorsSayTheFix: refusals of trust tokens, of a wrong --type, of a
// private key given as a certificate and of a name given as a fingerprint
// say what to do, against a real daemon.
func TestErrorsSayTheFix(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	url := "https://" + d.HTTPSAddr()
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	const hint = "the trust token is invalid or already used: ask the administrator for a new token"

	// A used token keeps the API's words and says what to do.
	tok := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "once", "-q"))
	first := cliEnv{conf: filepath.Join(t.TempDir(), "first"), data: t.TempDir()}
	first.mustRun(t, "", "remote", "add", "s", tok)
	for _, args := range [][]string{
		{"remote", "add", "s", tok},
		{"remote", "add", "s", url, "--token", tok},
	} {
		again := cliEnv{conf: filepath.Join(t.TempDir(), "again"), data: t.TempDir()}
		_, _, err := again.run(t, "", args...)
		if want := "Failed to create certificate: No matching certificate add operation found: " + hint; err == nil || err.Error() != want {
			t.Errorf("used token (%s): err = %v, want %q", args[3], err, want)
		}
	}
	// So does a token that does not decode, at the prompt or in --token,
	// and one given in place of the address.
	garbled := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("not a token ", 8)))
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{stdin: "y\ngarbage\n", args: []string{"remote", "add", "s", url}, want: "Failed to create certificate: not authorized: " + hint},
		{stdin: "y\n", args: []string{"remote", "add", "s", url, "--token", "garbage"}, want: "Failed to create certificate: not authorized: " + hint},
		{args: []string{"remote", "add", "s", garbled}, want: `"` + garbled[:20] + `..." is no address, and does not decode as a trust token: ` + hint},
	} {
		user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
		if _, _, err := user.run(t, tc.stdin, tc.args...); err == nil || err.Error() != tc.want {
			t.Errorf("trustlog %s: err = %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}

	// Certificate files, types and fingerprints: fixed certificates, so
	// the messages are golden.
	dir := t.TempDir()
	crt, key := writeCert(t, dir, "bob")
	both := filepath.Join(dir, "both.pem")
	keyPEM, _ := os.ReadFile(key)
	crtPEM, _ := os.ReadFile(crt)
	if err := os.WriteFile(both, append(keyPEM, crtPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	keyDER := filepath.Join(dir, "bob.der")
	if err := os.WriteFile(keyDER, pemBody(t, keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := filepath.Join("testdata", "certs", "alice.crt")
	admin.mustRun(t, "", "config", "trust", "add", alice, "--name", "alice")
	admin.mustRun(t, "", "config", "trust", "add", filepath.Join("testdata", "certs", "carol.crt"), "--name", "twin")
	admin.mustRun(t, "", "config", "trust", "add", filepath.Join("testdata", "certs", "bob.crt"), "--name", "twin")
	var got strings.Builder
	for _, args := range [][]string{
		{"config", "trust", "add", key},
		{"config", "trust", "add", keyDER},
		{"config", "trust", "add", alice, "--type", "admin"},
		{"config", "trust", "add", "--type", "admin", "--name", "x"},
		{"config", "trust", "remove", "alice"},
		{"config", "trust", "show", "local:", "alice"},
		{"config", "trust", "edit", "twin"},
		{"config", "trust", "remove", "nosuch"},
	} {
		_, _, err := admin.run(t, "", args...)
		if err == nil {
			t.Errorf("trustlog %s: accepted", strings.Join(args, " "))
			continue
		}
		got.WriteString("trustlog " + strings.Join(args, " ") + "\nError: " + err.Error() + "\n\n")
	}
	golden(t, "errors.txt", strings.ReplaceAll(got.String(), dir, "<dir>"))

	// A file with the key and the certificate gives its certificate (and
	// the key is not sent); a fingerprint as openssl prints it is taken.
	admin.mustRun(t, "", "config", "trust", "add", both, "--name", "bob-both")
	fp := shortFP(t, admin, "alice")
	admin.mustRun(t, "", "config", "trust", "show", strings.ToUpper(fp[:2]+":"+fp[2:4]+":"+fp[4:]))
	if list := admin.mustRun(t, "", "config", "trust", "list", "-c", "n", "-f", "csv"); list != "alice\nbob-both\nonce\ntwin\ntwin\n" {
		t.Errorf("trust store after the refusals:\n%s", list)
	}
}

// pemBody returns the bytes of the first PEM block of raw.
func pemBody(t *testing.T, raw []byte) []byte {
	t.Helper()
	s := string(raw)
	start := strings.Index(s, "-----\n") + len("-----\n")
	end := strings.Index(s, "\n-----END")
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s[start:end], "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return der
}
