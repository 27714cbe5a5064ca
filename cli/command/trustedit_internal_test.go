package command

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/api"
)

// TestApplyEdit covers how the YAML of `config trust edit` becomes the
// PUT body: every shown field is sent back, null means empty, and what
// cannot be applied exactly is refused.
func TestApplyEdit(t *testing.T) {
	t.Parallel()
	shown := api.Certificate{Name: "alice", Type: "client", Restricted: true, Projects: []string{"a", "b"},
		Certificate: "PEM", Description: "laptop", Fingerprint: "abc123"}
	all := api.CertificatePut{Name: "alice", Type: "client", Restricted: true, Projects: []string{"a", "b"},
		Certificate: "PEM", Description: "laptop"}
	with := func(edit func(*api.CertificatePut)) api.CertificatePut {
		p := all
		p.Projects = append([]string{}, all.Projects...)
		edit(&p)
		return p
	}
	for _, tc := range []struct {
		name    string
		yaml    string
		want    api.CertificatePut
		wantErr string
	}{
		{name: "ok/restricted alone sends every shown field", yaml: "restricted: true\n", want: all},
		{name: "ok/yaml 1.1 booleans", yaml: "restricted: no\nprojects: []\n",
			want: with(func(p *api.CertificatePut) { p.Restricted, p.Projects = false, []string{} })},
		{name: "ok/null projects and description are empty", yaml: "restricted: false\nprojects:\ndescription: ~\n",
			want: with(func(p *api.CertificatePut) { p.Restricted, p.Projects, p.Description = false, []string{}, "" })},
		{name: "ok/the fingerprint shown is taken", yaml: "restricted: true\nfingerprint: abc123\nname: bob\n",
			want: with(func(p *api.CertificatePut) { p.Name = "bob" })},
		{name: "ok/a number as the name is its text", yaml: "restricted: true\nname: 12\n",
			want: with(func(p *api.CertificatePut) { p.Name = "12" })},
		{name: "fail/restricted as a number", yaml: "restricted: 1\n", wantErr: `Line 1: invalid "restricted": yaml: unmarshal errors:`},
		{name: "fail/name as a mapping", yaml: "restricted: true\nname: {a: b}\n", wantErr: `Line 2: invalid "name": not a single value`},
		{name: "fail/projects as a string", yaml: "restricted: true\nprojects: web\n", wantErr: `Line 2: invalid "projects"`},
		{name: "fail/broken yaml", yaml: "restricted: [\n", wantErr: "Invalid YAML: "},
		{name: "fail/a scalar", yaml: "hello\n", wantErr: "Invalid YAML: line 1: the entry must be a mapping"},
		{name: "fail/an unknown field before restricted", yaml: "groups: []\nrestricted: true\n", wantErr: `Line 1: unknown field "groups"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := applyEdit(shown, []byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("applyEdit = %v, want an error starting %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PUT body (-want +got):\n%s", diff)
			}
		})
	}
	if shown.Projects[0] != "a" {
		t.Error("applyEdit changed the entry shown")
	}
}
