package command_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/api"
)

// TestRemoteAddPrompt answers the certificate prompt of `remote add` in
// every way on stdin, against a real daemon whose certificate no system
// root knows.
func TestRemoteAddPrompt(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	url := "https://" + d.HTTPSAddr()
	fp := d.Fingerprint()
	for _, tc := range []struct {
		name, answer string
		wantErr      string // "" = trusted
	}{
		{name: "ok/y", answer: "y"},
		{name: "ok/Yes", answer: "Yes"},
		{name: "ok/fingerprint", answer: fp},
		{name: "ok/spaces around y", answer: "  y  "},
		{name: "fail/n", answer: "n", wantErr: "Server certificate NACKed by user"},
		{name: "fail/empty", answer: "", wantErr: "Server certificate NACKed by user"},
		{name: "ok/fingerprint in capitals", answer: strings.ToUpper(fp)},
		{name: "ok/fingerprint as openssl prints it", answer: opensslFingerprint(fp)},
		{name: "fail/no", answer: "no", wantErr: "Server certificate NACKed by user"},
		{name: "fail/other words", answer: "maybe", wantErr: `Invalid answer "maybe": type y, n or the server certificate fingerprint`},
		{name: "fail/another fingerprint", answer: strings.Repeat("0", 64),
			wantErr: "The provided fingerprint does not match the server certificate fingerprint: you typed " + strings.Repeat("0", 64) +
				", the server presents " + fp},
		{name: "fail/short fingerprint", answer: fp[:12],
			wantErr: "The provided fingerprint does not match the server certificate fingerprint: " + fp[:12] +
				" is only its first 12 digits; type all 64, or y"},
		{name: "fail/another short fingerprint", answer: "0123456789ab",
			wantErr: "The provided fingerprint does not match the server certificate fingerprint: you typed 0123456789ab, the server presents " + fp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
			stdin := tc.answer + "\n"
			// stdin is piped: each prompt ends its line on stderr, and
			// the answers (a token is a secret) are not echoed.
			wantErrOut := "Generating a client certificate. This may take a minute...\nok (y/n/[fingerprint])? \n"
			if tc.wantErr == "" {
				stdin += strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", strings.NewReplacer("/", "-", " ", "-").Replace(tc.name), "-q")) + "\n"
				wantErrOut += "Trust token for srv: \n"
			}
			out, errOut, err := user.run(t, stdin, "remote", "add", "srv", url)
			if !strings.Contains(out, "Certificate fingerprint: "+fp+"\n") || errOut != wantErrOut {
				t.Errorf("prompts: stdout %q stderr %q, want stderr %q", out, errOut, wantErrOut)
			}
			_, statErr := os.Stat(filepath.Join(user.conf, "servercerts", "srv.crt"))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if statErr == nil {
					t.Error("refused certificate was pinned")
				}
				if list := user.mustRun(t, "", "remote", "list", "-f", "csv"); strings.Contains(list, "srv,") {
					t.Errorf("refused remote saved:\n%s", list)
				}
				return
			}
			if err != nil {
				t.Fatalf("remote add: %v\nstderr: %s", err, errOut)
			}
			if !strings.Contains(errOut, "Trust token for srv: ") || !strings.Contains(out, "Client certificate now trusted by server: srv\n") {
				t.Errorf("token prompt or trust message missing: stdout %q stderr %q", out, errOut)
			}
			if statErr != nil {
				t.Errorf("accepted certificate not pinned: %v", statErr)
			}
			if info := user.mustRun(t, "", "info", "srv:"); !strings.Contains(info, "auth: trusted") {
				t.Errorf("info after add:\n%s", info)
			}
		})
	}
}

// TestRemoteAddTokenFlag: a --token that is a trust token pins the server
// by the token's fingerprint without a prompt, and a token naming another
// certificate is refused before it is sent, --accept-certificate or not.
func TestRemoteAddTokenFlag(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	url := "https://" + d.HTTPSAddr()

	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
	tok := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "flag", "-q"))
	out, errOut, err := user.run(t, "", "remote", "add", "srv", url, "--token", tok)
	if err != nil {
		t.Fatalf("remote add --token: %v\n%s", err, errOut)
	}
	if strings.Contains(out, "Certificate fingerprint") || strings.Contains(errOut, "ok (y/n") {
		t.Errorf("prompted although the token names the certificate: %q %q", out, errOut)
	}

	raw := strings.TrimSpace(admin.mustRun(t, "", "config", "trust", "add", "--name", "wrong", "-q"))
	forged, err := api.DecodeCertificateAddToken(raw)
	if err != nil {
		t.Fatal(err)
	}
	forged.Fingerprint = strings.Repeat("ab", 32)
	for _, accept := range []bool{false, true} {
		other := cliEnv{conf: filepath.Join(t.TempDir(), "other"), data: t.TempDir()}
		args := []string{"remote", "add", "srv", url, "--token", forged.Encode()}
		if accept {
			args = append(args, "--accept-certificate")
		}
		_, _, err := other.run(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), "Certificate fingerprint mismatch") {
			t.Errorf("accept=%v: err = %v, want a fingerprint mismatch", accept, err)
		}
	}
	if list := admin.mustRun(t, "", "config", "trust", "list-tokens", "-f", "csv"); !strings.HasPrefix(list, "wrong,") {
		t.Errorf("refused token was spent: %q", list)
	}

	// A --token that is not a trust token is sent as it is (the server
	// judges it), after the usual prompt.
	third := cliEnv{conf: filepath.Join(t.TempDir(), "third"), data: t.TempDir()}
	_, _, err = third.run(t, "y\n", "remote", "add", "srv", url, "--token", "garbage")
	if err == nil || !strings.Contains(err.Error(), "Failed to create certificate") {
		t.Errorf("garbage token: err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(third.conf, "servercerts", "srv.crt")); err == nil {
		t.Error("pin kept after the trust step failed")
	}
}

// TestRemoteAddPublic: a public remote is added and used without a client
// certificate and without trust.
func TestRemoteAddPublic(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir())
	user := cliEnv{conf: filepath.Join(t.TempDir(), "user"), data: t.TempDir()}
	_, errOut, err := user.run(t, "", "remote", "add", "pub", "https://"+d.HTTPSAddr(), "--public", "--accept-certificate")
	if err != nil {
		t.Fatalf("remote add --public: %v\n%s", err, errOut)
	}
	if info := user.mustRun(t, "", "info", "pub:"); !strings.Contains(info, "auth: untrusted") {
		t.Errorf("info pub:\n%s", info)
	}
	if _, err := os.Stat(filepath.Join(user.conf, "client.crt")); err == nil || strings.Contains(errOut, "Generating") {
		t.Error("a client certificate was generated for a public remote")
	}
	if list := user.mustRun(t, "", "remote", "list", "-f", "csv"); !strings.Contains(list, "pub,https://"+d.HTTPSAddr()+",incus,none,YES,NO,NO\n") {
		t.Errorf("remote list:\n%s", list)
	}
}

// opensslFingerprint writes fp as `openssl x509 -fingerprint -sha256`
// does: uppercase pairs joined by colons.
func opensslFingerprint(fp string) string {
	var pairs []string
	for i := 0; i+1 < len(fp); i += 2 {
		pairs = append(pairs, strings.ToUpper(fp[i:i+2]))
	}
	return strings.Join(pairs, ":")
}
