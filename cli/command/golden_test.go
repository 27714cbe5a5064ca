package command_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// golden compares got with testdata/<name>, or rewrites the file with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

// TestOutputGolden renders a trust store of fixed certificates
// (testdata/certs, valid 2026 to 2126) held by a real daemon, in every
// format, through the local remote, and the server configuration.
func TestOutputGolden(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	certs := filepath.Join("testdata", "certs")
	admin.mustRun(t, "", "config", "trust", "add", filepath.Join(certs, "alice.crt"), "--name", "alice",
		"--restricted", "--projects", "web,db", "--description", "Alice's laptop")
	admin.mustRun(t, "", "config", "trust", "add", "local:", filepath.Join(certs, "bob.crt"), "--type", "metrics")
	admin.mustRun(t, "", "config", "trust", "add", filepath.Join(certs, "carol.crt"))

	for _, format := range []string{"table", "csv", "json", "yaml"} {
		golden(t, "trust-list."+format, admin.mustRun(t, "", "config", "trust", "list", "--format", format))
	}
	golden(t, "trust-list-columns.table", admin.mustRun(t, "", "config", "trust", "list", "local:", "-c", "nf,dp"))
	golden(t, "trust-list-columns.csv", admin.mustRun(t, "", "config", "trust", "list", "-c", "f", "-f", "csv"))
	for _, bad := range []string{"nx", "n,,f", ""} {
		if _, _, err := admin.run(t, "", "config", "trust", "list", "-c", bad); err == nil {
			t.Errorf("columns %q accepted", bad)
		}
	}

	golden(t, "trust-show.yaml", admin.mustRun(t, "", "config", "trust", "show", "local:", shortFP(t, admin, "alice")))
	golden(t, "query-certificates.json", admin.mustRun(t, "", "query", "local:/1.0/certificates"))
	golden(t, "query-certificate.json", admin.mustRun(t, "", "query", "/1.0/certificates/"+shortFP(t, admin, "carol@desk")))
	golden(t, "query-raw-certificates.json", admin.mustRun(t, "", "query", "--raw", "local:/1.0/certificates"))

	admin.mustRun(t, "", "config", "set", "user.team", "blue")
	admin.mustRun(t, "", "config", "set", "local:", "user.a=1", "user.b=two words")
	admin.mustRun(t, "", "config", "unset", "user.a")
	golden(t, "config-show.yaml", admin.mustRun(t, "", "config", "show"))
}

// shortFP returns the 12-character fingerprint of the entry called name.
func shortFP(t *testing.T, c cliEnv, name string) string {
	t.Helper()
	for line := range strings.SplitSeq(c.mustRun(t, "", "config", "trust", "list", "-c", "nf", "-f", "csv"), "\n") {
		if n, fp, ok := strings.Cut(line, ","); ok && n == name {
			return fp
		}
	}
	t.Fatalf("no trust entry called %q", name)
	return ""
}
