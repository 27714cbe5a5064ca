package command_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBareWordIsNotARemote: where a command takes "[<remote>:]", a bare
// word is refused (incus reads "info srv" as an instance; Trustlog has
// none), never taken for the default remote, and the command does
// nothing. A remote written with its colon works, and the other
// positional arguments keep their places.
func TestBareWordIsNotARemote(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	// mysrv is a second name for the same daemon.
	admin.mustRun(t, "", "remote", "add", "mysrv", "unix://"+filepath.Join(data, "unix.socket"))
	admin.mustRun(t, "", "config", "trust", "add", filepath.Join("testdata", "certs", "alice.crt"), "--name", "alice")
	admin.mustRun(t, "", "config", "trust", "add", "--name", "pending", "-q")
	admin.mustRun(t, "", "config", "set", "user.team", "blue")
	fp := shortFP(t, admin, "alice")
	cert := filepath.Join("testdata", "certs", "bob.crt")

	unknown := `Invalid argument "nosuch": expected a remote, written "<remote>:" (remotes: local, mysrv)`
	known := `Invalid argument "mysrv": a remote is written with a colon, "mysrv:"`
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "fail/info", args: []string{"info", "nosuch"}, want: unknown},
		{name: "fail/info known remote", args: []string{"info", "mysrv"}, want: known},
		{name: "fail/info local", args: []string{"info", "local"}, want: `Invalid argument "local": a remote is written with a colon, "local:"`},
		{name: "fail/trust list", args: []string{"config", "trust", "list", "nosuch"}, want: unknown},
		{name: "fail/trust list known remote", args: []string{"config", "trust", "list", "mysrv"}, want: known},
		{name: "fail/trust list-tokens", args: []string{"config", "trust", "list-tokens", "nosuch"}, want: unknown},
		{name: "fail/trust show", args: []string{"config", "trust", "show", "nosuch", fp}, want: unknown},
		{name: "fail/trust edit", args: []string{"config", "trust", "edit", "mysrv", fp}, want: known},
		{name: "fail/trust remove", args: []string{"config", "trust", "remove", "nosuch", fp}, want: unknown},
		{name: "fail/trust revoke-token", args: []string{"config", "trust", "revoke-token", "mysrv", "pending"}, want: known},
		{name: "fail/trust add", args: []string{"config", "trust", "add", "nosuch", cert}, want: unknown},
		{name: "fail/config show", args: []string{"config", "show", "nosuch"}, want: unknown},
		{name: "fail/config get", args: []string{"config", "get", "nosuch", "user.team"}, want: unknown},
		{name: "fail/config unset", args: []string{"config", "unset", "mysrv", "user.team"}, want: known},
		{name: "fail/monitor", args: []string{"monitor", "nosuch"}, want: unknown},
		{name: "fail/whoami", args: []string{"auth", "whoami", "nosuch"}, want: unknown},
		{name: "fail/identity list", args: []string{"auth", "identity", "list", "nosuch"}, want: unknown},
		{name: "fail/audit verify", args: []string{"audit", "verify", "nosuch"}, want: unknown},
		{name: "fail/audit history", args: []string{"audit", "history", "nosuch", fp}, want: unknown},
		{name: "fail/pki ca show", args: []string{"pki", "ca", "show", "nosuch"}, want: unknown},
		{name: "fail/pki crl set", args: []string{"pki", "crl", "set", "nosuch", cert}, want: unknown},
		{name: "fail/unknown remote with its colon", args: []string{"info", "nosuch:"}, want: `The remote "nosuch" doesn't exist`},
	} {
		out, _, err := admin.run(t, "", tc.args...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: trustlog %s: err = %v, want %q", tc.name, strings.Join(tc.args, " "), err, tc.want)
		}
		if out != "" {
			t.Errorf("%s: printed %.120q", tc.name, out)
		}
	}
	// Nothing changed: the entry, the token and the key are all there.
	if got := admin.mustRun(t, "", "config", "trust", "list", "mysrv:", "-c", "n", "-f", "csv"); got != "alice\n" {
		t.Errorf("trust store after the refusals: %q", got)
	}
	if got := admin.mustRun(t, "", "config", "trust", "list-tokens", "local:", "-f", "csv"); !strings.HasPrefix(got, "pending,") {
		t.Errorf("tokens after the refusals: %q", got)
	}
	if got := admin.mustRun(t, "", "config", "get", "mysrv:", "user.team"); got != "blue\n" {
		t.Errorf("user.team after the refusals: %q", got)
	}

	// The forms that name a remote, or none, still work.
	for _, args := range [][]string{
		{"info", "mysrv:"},
		{"config", "show"},
		{"config", "get", "user.team"},
		{"config", "trust", "show", fp},
		{"config", "trust", "show", "mysrv:", fp},
		{"config", "trust", "show", "mysrv:" + fp},
		{"audit", "history", fp},
		{"pki", "ca", "show", "local:"},
	} {
		if _, errOut, err := admin.run(t, "", args...); err != nil {
			t.Errorf("trustlog %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
	}
}
