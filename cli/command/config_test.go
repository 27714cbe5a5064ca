package command_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/expiry"
)

// TestConfigUnknownKey: `config get`, `set` and `unset` refuse a key the
// server does not know alike, with the server's words; known keys that
// are unset, and free-form user.* keys, read as empty.
func TestConfigUnknownKey(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	const want = `Invalid config: unknown configuration key "core.bogus"`
	for _, args := range [][]string{
		{"config", "set", "core.bogus", "1"},
		{"config", "get", "core.bogus"},
		{"config", "unset", "core.bogus"},
		{"config", "get", "local:", "core.bogus"},
		{"config", "unset", "local:", "core.bogus"},
	} {
		out, _, err := admin.run(t, "", args...)
		if err == nil || err.Error() != want {
			t.Errorf("trustlog %v: err = %v, want %q", args, err, want)
		}
		if out != "" {
			t.Errorf("trustlog %v printed %q", args, out)
		}
	}
	for _, key := range []string{"core.https_advertise_addresses", "acme.domain", "user.nothing"} {
		if out := admin.mustRun(t, "", "config", "get", key); out != "\n" {
			t.Errorf("config get %s = %q, want an empty line", key, out)
		}
		admin.mustRun(t, "", "config", "unset", key)
	}
	// A bad expiry is refused with the units, as get-client-token does.
	if _, _, err := admin.run(t, "", "config", "set", "core.remote_token_expiry", "30min"); err == nil || !strings.Contains(err.Error(), expiry.Units) {
		t.Errorf("config set core.remote_token_expiry 30min: err = %v, want the units %q", err, expiry.Units)
	}
	admin.mustRun(t, "", "config", "set", "core.remote_token_expiry", "2H")
	if out := admin.mustRun(t, "", "config", "get", "core.remote_token_expiry"); out != "2H\n" {
		t.Errorf("config get core.remote_token_expiry = %q", out)
	}
	admin.mustRun(t, "", "config", "unset", "core.remote_token_expiry")
	if out := admin.mustRun(t, "", "config", "get", "core.remote_token_expiry"); out != "\n" {
		t.Errorf("config get core.remote_token_expiry after unset = %q", out)
	}
}
