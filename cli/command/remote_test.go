package command_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/cli/command"
	"github.com/trustlog/trustlog/cli/config"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestNormalizeAddr(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, want string
		fail           bool
	}{
		{name: "ok/ip", in: "192.0.2.1", want: "https://192.0.2.1:8443"},
		{name: "ok/ip and port", in: "192.0.2.1:9443", want: "https://192.0.2.1:9443"},
		{name: "ok/url", in: "https://example.com", want: "https://example.com:8443"},
		{name: "ok/ipv6", in: "2001:db8::1", want: "https://[2001:db8::1]:8443"},
		{name: "ok/ipv6 brackets port", in: "[2001:db8::1]:9443", want: "https://[2001:db8::1]:9443"},
		{name: "ok/unix scheme", in: "unix:///run/t.socket", want: "unix:///run/t.socket"},
		{name: "ok/unix path", in: "/run/t.socket", want: "unix:///run/t.socket"},
		{name: "ok/host and port", in: "trust.example.com:443", want: "https://trust.example.com:443"},
		{name: "ok/url with ipv6", in: "https://[2001:db8::1]", want: "https://[2001:db8::1]:8443"},
		{name: "ok/url path dropped", in: "https://example.com:9443/", want: "https://example.com:9443"},
		{name: "ok/unix relative", in: "unix:run/t.socket", want: "unix://" + filepath.Join(wd, "run/t.socket")},
		{name: "ok/unix double slash", in: "unix://" + "/run/t.socket", want: "unix:///run/t.socket"},
		{name: "ok/dot path", in: "./t.socket", want: "unix://" + filepath.Join(wd, "t.socket")},
		{name: "fail/http", in: "http://example.com", fail: true},
		{name: "fail/other scheme", in: "ftp://example.com", fail: true},
		{name: "fail/no host", in: "https://", fail: true},
		{name: "fail/no socket path", in: "unix:", fail: true},
		{name: "fail/bad port", in: "example.com:port", fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := command.NormalizeAddr(tc.in)
			if (err != nil) != tc.fail {
				t.Fatalf("NormalizeAddr(%q) err = %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeAddr(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRemoteCommands checks the pure client-side remote commands and the
// output formats of remote list against golden files.
func TestRemoteCommands(t *testing.T) {
	t.Parallel()
	c := cliEnv{conf: filepath.Join(t.TempDir(), "conf"), data: "/nonexistent"}
	c.mustRun(t, "", "remote", "add", "s1", "unix:///tmp/s1.socket")
	c.mustRun(t, "", "remote", "add", "s2", "/tmp/s2.socket")
	if _, _, err := c.run(t, "", "remote", "add", "s1", "/tmp/x"); err == nil || err.Error() != "Remote s1 already exists" {
		t.Errorf("duplicate remote: %v", err)
	}
	if _, _, err := c.run(t, "", "remote", "add", "a:b", "/tmp/x"); err == nil {
		t.Error("remote name with a colon accepted")
	}
	c.mustRun(t, "", "remote", "switch", "s1")
	if got := strings.TrimSpace(c.mustRun(t, "", "remote", "get-default")); got != "s1" {
		t.Errorf("get-default = %q", got)
	}
	if _, _, err := c.run(t, "", "remote", "remove", "s1"); err == nil || err.Error() != "Can't remove the default remote" {
		t.Errorf("remove default: %v", err)
	}
	c.mustRun(t, "", "remote", "rename", "s1", "main")
	if got := strings.TrimSpace(c.mustRun(t, "", "remote", "get-default")); got != "main" {
		t.Errorf("default after rename = %q", got)
	}
	c.mustRun(t, "", "remote", "set-default", "local")
	c.mustRun(t, "", "remote", "remove", "s2")
	// HTTPS remotes need a server to be added; write them as remote add
	// would have saved them.
	conf, err := config.Load(c.conf, "/nonexistent/unix.socket")
	if err != nil {
		t.Fatal(err)
	}
	conf.Remotes["prod"] = config.Remote{Addr: "https://[2001:db8::10]:8443", Protocol: "incus", AuthType: "tls"}
	conf.Remotes["mirror"] = config.Remote{Addr: "https://images.example.com:8443", Protocol: "incus", Public: true}
	if err := conf.Save(); err != nil {
		t.Fatal(err)
	}
	c.mustRun(t, "", "remote", "set-url", "prod", "192.0.2.10")
	for _, format := range []string{"table", "csv", "json", "yaml"} {
		out := c.mustRun(t, "", "remote", "list", "--format", format)
		golden := filepath.Join("testdata", "remote-list."+format)
		if *update {
			if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if diff := cmp.Diff(string(want), out); diff != "" {
			t.Errorf("remote list --format %s (-want +got):\n%s", format, diff)
		}
	}
	if _, _, err := c.run(t, "", "remote", "list", "--format", "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}
