package command_test

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/trustlog/trustlog/functions/api"
)

// TestTrustEdit runs `config trust edit` against trustlogd with YAML piped
// in: an edit the CLI cannot apply exactly (an unknown field, restricted
// left out, an empty name) exits non-zero and changes nothing on the
// server; "restricted: false" written out lifts the restriction; the
// output of `config trust show`, edited, round-trips.
func TestTrustEdit(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	crt, _ := writeCert(t, t.TempDir(), "alice")
	admin.mustRun(t, "", "config", "trust", "add", crt, "--name", "alice", "--restricted", "--projects", "a,b",
		"--description", "laptop")
	var list []api.Certificate
	if err := json.Unmarshal([]byte(admin.mustRun(t, "", "config", "trust", "list", "--format", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("trust list: %v, %d entries", err, len(list))
	}
	fp := list[0].Fingerprint
	show := func() api.Certificate {
		t.Helper()
		var c api.Certificate
		out := admin.mustRun(t, "", "config", "trust", "show", fp)
		if err := yaml.Unmarshal([]byte(out), &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// lastSeq is the event stream's last sequence, as the audit verification reports it.
	lastSeq := func() uint64 {
		t.Helper()
		var v api.AuditVerification
		if err := json.Unmarshal([]byte(admin.mustRun(t, "", "query", "/1.0/trustlog/audit/verify")), &v); err != nil {
			t.Fatal(err)
		}
		return v.LastSeq
	}
	shown := admin.mustRun(t, "", "config", "trust", "show", fp)
	entry := show()
	if !entry.Restricted || entry.Name != "alice" {
		t.Fatalf("entry as added: %+v", entry)
	}
	// without drops the lines of shown that start with key.
	without := func(key string) string {
		return regexp.MustCompile(`(?m)^`+key+`:.*\n`).ReplaceAllString(shown, "")
	}

	for _, tc := range []struct {
		name, stdin, wantErr string
	}{
		{name: "fail/only an unknown field", stdin: "unknown_field: 1\n",
			wantErr: `Line 1: unknown field "unknown_field" (the fields are name, type, restricted, projects, certificate, description, fingerprint)`},
		{name: "fail/the whole entry and an unknown field", stdin: shown + "unknown_field: 1\n", wantErr: `unknown field "unknown_field"`},
		{name: "fail/restricted left out", stdin: without("restricted"), wantErr: `The edited entry has no "restricted"`},
		{name: "fail/restricted with no value", stdin: strings.Replace(shown, "restricted: true", "restricted:", 1),
			wantErr: `"restricted" has no value`},
		{name: "fail/nothing at all", stdin: "", wantErr: `The edited entry has no "restricted"`},
		{name: "fail/empty name", stdin: strings.Replace(shown, "name: alice", `name: ""`, 1),
			wantErr: `Line 1: the name must not be empty (it is "alice")`},
		{name: "fail/name with no value", stdin: strings.Replace(shown, "name: alice", "name:", 1),
			wantErr: "the name must not be empty"},
		{name: "fail/misspelt field", stdin: strings.Replace(shown, "restricted: true", "restriced: false", 1),
			wantErr: `unknown field "restriced"`},
		{name: "fail/not a mapping", stdin: "- restricted: false\n", wantErr: "the entry must be a mapping"},
		{name: "fail/restricted given twice", stdin: shown + "restricted: false\n", wantErr: `"restricted" is given twice`},
		{name: "fail/another fingerprint", stdin: strings.Replace(shown, "fingerprint: "+fp, "fingerprint: "+strings.Repeat("0", 64), 1),
			wantErr: "the fingerprint cannot be changed"},
		{name: "fail/two documents", stdin: shown + "---\nrestricted: false\n", wantErr: "give one document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeq()
			_, _, err := admin.run(t, tc.stdin, "config", "trust", "edit", fp)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("edit = %v, want an error with %q", err, tc.wantErr)
			}
			if after := lastSeq(); after != before {
				t.Errorf("a refused edit moved the stream from %d to %d", before, after)
			}
			if diff := cmp.Diff(entry, show()); diff != "" {
				t.Errorf("entry changed by a refused edit (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("ok/show edited round-trips", func(t *testing.T) {
		admin.mustRun(t, strings.Replace(shown, "description: laptop", "description: work laptop", 1), "config", "trust", "edit", fp)
		want := entry
		want.Description = "work laptop"
		if diff := cmp.Diff(want, show()); diff != "" {
			t.Errorf("entry (-want +got):\n%s", diff)
		}
		entry = want
	})
	t.Run("ok/fields left out keep their value", func(t *testing.T) {
		admin.mustRun(t, "name: bob\nrestricted: true\n", "config", "trust", "edit", fp)
		want := entry
		want.Name = "bob"
		if diff := cmp.Diff(want, show()); diff != "" {
			t.Errorf("entry (-want +got):\n%s", diff)
		}
		entry = want
	})
	t.Run("ok/restricted false written out lifts the restriction", func(t *testing.T) {
		admin.mustRun(t, "restricted: false\nprojects: []\n", "config", "trust", "edit", fp)
		want := entry
		want.Restricted, want.Projects = false, []string{}
		if diff := cmp.Diff(want, show()); diff != "" {
			t.Errorf("entry (-want +got):\n%s", diff)
		}
	})
}
