package command_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionGolden runs the shell's completion requests (`trustlog
// __complete <words> <word being typed>`) against a real daemon holding
// the fixed certificates and two pending tokens: remotes with their
// colon, fingerprints (described by their names) of the default remote or
// of a named one, token names, configuration keys and --format values.
func TestCompletionGolden(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	for _, name := range []string{"alice", "bob", "carol"} {
		admin.mustRun(t, "", "config", "trust", "add", filepath.Join("testdata", "certs", name+".crt"), "--name", name)
	}
	admin.mustRun(t, "", "config", "trust", "add", "--name", "laptop", "-q")
	admin.mustRun(t, "", "config", "trust", "add", "--name", "ci", "-q")
	admin.mustRun(t, "", "config", "set", "user.team", "blue")
	// other is a second name for the daemon, to complete "other:<...>".
	admin.mustRun(t, "", "remote", "add", "other", "unix://"+filepath.Join(data, "unix.socket"))
	// A TLS remote whose client certificate was never made: nothing is
	// asked of it, and no certificate is generated to complete a word.
	admin.mustRun(t, "", "remote", "add", "far", "/nonexistent/unix.socket")
	admin.mustRun(t, "", "remote", "set-url", "far", "https://127.0.0.1:1")

	var got strings.Builder
	for _, words := range [][]string{
		{"info", ""},
		{"info", "o"},
		{"info", "other:", ""},
		{"config", "trust", "list", ""},
		{"config", "trust", "show", ""},
		{"config", "trust", "show", "b"},
		{"config", "trust", "remove", "other:"},
		{"config", "trust", "edit", "other:", ""},
		{"config", "trust", "show", "far:", ""},
		{"config", "trust", "show", "nosuch:", ""},
		{"config", "trust", "revoke-token", ""},
		{"config", "trust", "revoke-token", "other:", "l"},
		{"config", "get", "core."},
		{"config", "get", "user"},
		{"config", "unset", "other:", "oidc.c"},
		{"config", "set", "acme.e"},
		{"remote", "switch", ""},
		{"remote", "remove", "o"},
		{"query", ""},
		{"config", "trust", "list", "--format", ""},
		{"config", "trust", "list", "-f", "y"},
		{"monitor", "--format", ""},
		{"auth", "whoami", "-f", ""},
	} {
		out, _, err := admin.run(t, "", append([]string{"__complete"}, words...)...)
		if err != nil {
			t.Fatalf("__complete %q: %v", words, err)
		}
		fmt.Fprintf(&got, "$ trustlog %s<TAB>\n%s\n", strings.Join(words, " "), out)
	}
	golden(t, "completion.txt", got.String())
	if _, err := os.Stat(filepath.Join(admin.conf, "client.crt")); err == nil {
		t.Error("a completion generated the client certificate")
	}
}
