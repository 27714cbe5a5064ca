package command

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/api"
)

func newTestEnv(stdin string, vars map[string]string) (*env, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	in := strings.NewReader(stdin)
	return &env{stdin: in, in: bufio.NewReader(in), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return vars[k] }}, &out, &errOut
}

func TestPrompt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stdin string
		want        []string
	}{
		{name: "ok/one line", stdin: "y\n", want: []string{"y"}},
		{name: "ok/no final newline", stdin: "token", want: []string{"token"}},
		{name: "ok/spaces and CRLF", stdin: "  yes \r\n", want: []string{"yes"}},
		{name: "ok/two prompts read two lines", stdin: "y\nTOKEN\n", want: []string{"y", "TOKEN"}},
		{name: "ok/empty input answers empty", stdin: "", want: []string{"", ""}},
		{name: "ok/blank line", stdin: "\n", want: []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, out, errOut := newTestEnv(tc.stdin, nil)
			var got []string
			for range tc.want {
				a, err := e.prompt("Q? ")
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, a)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
			// stdin is not a terminal: each prompt ends its line, and the
			// answers are not echoed.
			if out.Len() != 0 || errOut.String() != strings.Repeat("Q? \n", len(tc.want)) {
				t.Errorf("prompts: stdout %q, stderr %q; want stderr %q", out.String(), errOut.String(), strings.Repeat("Q? \n", len(tc.want)))
			}
		})
	}
}

func TestStdinIsTerminal(t *testing.T) {
	t.Parallel()
	e, _, _ := newTestEnv("", nil)
	if e.stdinIsTerminal() {
		t.Error("a strings.Reader is a terminal")
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	e.stdin = devNull // a character device, but not a terminal
	if e.stdinIsTerminal() {
		t.Error("/dev/null is a terminal")
	}
}

func TestEditInEditor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
		fail bool
	}{
		{name: "ok/EDITOR", vars: map[string]string{"EDITOR": `sed -i -e s/old/new/`}, want: "name: new\n"},
		{name: "ok/VISUAL wins", vars: map[string]string{"VISUAL": `sed -i -e s/old/visual/`, "EDITOR": "false"}, want: "name: visual\n"},
		{name: "fail/editor fails", vars: map[string]string{"EDITOR": "false"}, fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, _, _ := newTestEnv("", tc.vars)
			got, err := e.editInEditor(map[string]string{"name": "old"})
			if (err != nil) != tc.fail {
				t.Fatalf("err = %v", err)
			}
			if !tc.fail && string(got) != tc.want {
				t.Errorf("edited = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigDirs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		vars         map[string]string
		conf, socket string
	}{
		{name: "ok/defaults under HOME", vars: map[string]string{"HOME": "/home/u"},
			conf: "/home/u/.config/trustlog", socket: "/home/u/.local/share/trustlog/unix.socket"},
		{name: "ok/TRUSTLOG_CONF and TRUSTLOG_DIR", vars: map[string]string{"HOME": "/home/u", "TRUSTLOG_CONF": "/c", "TRUSTLOG_DIR": "/d"},
			conf: "/c", socket: filepath.Join("/d", "unix.socket")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, _, _ := newTestEnv("", tc.vars)
			if e.confDir() != tc.conf || e.socketPath() != tc.socket {
				t.Errorf("confDir %q socketPath %q, want %q %q", e.confDir(), e.socketPath(), tc.conf, tc.socket)
			}
		})
	}
	e, _, _ := newTestEnv("", nil)
	if err := e.load(); err == nil {
		t.Error("load without TRUSTLOG_CONF or HOME succeeded")
	}
}

// TestTokenFromOperation builds the token the way incus does from a token
// operation's metadata: base64 of compact JSON in a fixed key order.
func TestTokenFromOperation(t *testing.T) {
	t.Parallel()
	op := api.Operation{Class: "token", StatusCode: 103, Metadata: map[string]any{
		"secret":      strings.Repeat("5e", 32),
		"fingerprint": strings.Repeat("f1", 32),
		"addresses":   []any{"192.0.2.10:8443", "[2001:db8::10]:8443"},
		"request":     map[string]any{"name": "laptop", "type": "client", "token": true, "projects": []any{}},
		"expiresAt":   "2026-12-01T10:00:00.5Z",
	}}
	tok, err := tokenFromOperation(op)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"client_name":"laptop","fingerprint":"` + strings.Repeat("f1", 32) +
		`","addresses":["192.0.2.10:8443","[2001:db8::10]:8443"],"secret":"` + strings.Repeat("5e", 32) +
		`","expires_at":"2026-12-01T10:00:00.5Z"}`
	if got := tok.Encode(); got != base64.StdEncoding.EncodeToString([]byte(wantJSON)) {
		raw, _ := base64.StdEncoding.DecodeString(got)
		t.Errorf("token JSON = %s\nwant %s", raw, wantJSON)
	}
	back, err := api.DecodeCertificateAddToken(tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tok, back); diff != "" {
		t.Errorf("decode(encode) (-want +got):\n%s", diff)
	}

	// Without expiry the token carries Go's zero time, as upstream.
	delete(op.Metadata, "expiresAt")
	tok, err = tokenFromOperation(op)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(tok.Encode())
	if !strings.HasSuffix(string(raw), `"expires_at":"0001-01-01T00:00:00Z"}`) {
		t.Errorf("token without expiry = %s", raw)
	}

	delete(op.Metadata, "secret")
	if _, err := tokenFromOperation(op); err == nil {
		t.Error("operation without a secret made a token")
	}
}
