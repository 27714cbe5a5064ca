package service_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/api"
)

// TestCertificateEditBody: PUT and PATCH of a trust-store entry refuse a
// field the API does not have (a 400, nothing appended, the entry as it
// was) instead of dropping it, take every field stock clients send, and
// otherwise follow LXD's PUT semantics: a PUT replaces the entry, so a
// field left out takes its zero value, the certificate excepted, and the
// type must be given.
func TestCertificateEditBody(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.validCert(t, "edited")
	fp := s.add(t, c, api.CertificatesPost{Name: "edited", Restricted: true, Projects: []string{"p1"}, Description: "first"})
	restricted := api.Certificate{Name: "edited", Type: "client", Restricted: true, Projects: []string{"p1"},
		Certificate: c.PEM(), Description: "first", Fingerprint: fp}
	path := "/1.0/certificates/" + fp

	for _, tc := range []struct {
		name    string
		method  string
		body    any
		wantErr string
	}{
		{name: "fail/put only an unknown field", method: "PUT", body: `{"unknown_field":1}`,
			wantErr: `json: unknown field "unknown_field"`},
		{name: "fail/put a whole entry with an unknown field", method: "PUT",
			body:    `{"name":"edited","type":"client","restricted":false,"projects":[],"certificate":"","description":"","unknown_field":1}`,
			wantErr: `json: unknown field "unknown_field"`},
		{name: "fail/put a misspelt field", method: "PUT", body: `{"name":"edited","type":"client","restriced":true,"projects":["p1"]}`,
			wantErr: `json: unknown field "restriced"`},
		{name: "fail/patch an unknown field", method: "PATCH", body: `{"unknown_field":1}`,
			wantErr: `json: unknown field "unknown_field"`},
		{name: "fail/patch an lxd-only field", method: "PATCH", body: `{"password":"x"}`,
			wantErr: `json: unknown field "password"`},
		{name: "fail/put a second json value", method: "PUT", body: `{"name":"edited","type":"client"} {"restricted":false}`,
			wantErr: "unexpected data after the JSON body"},
		{name: "fail/put without the type", method: "PUT", body: `{"name":"edited","restricted":true,"projects":["p1"]}`,
			wantErr: "The certificate type cannot be changed"},
		{name: "fail/patch an empty type", method: "PATCH", body: `{"type":""}`,
			wantErr: "The certificate type cannot be changed"},
		{name: "fail/put another fingerprint", method: "PUT", body: map[string]any{"name": "x", "type": "client", "fingerprint": flip(fp)},
			wantErr: "The fingerprint cannot be changed: replace the certificate instead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			wantError(t, s.call(t, nil, tc.method, path, tc.body), http.StatusBadRequest, tc.wantErr)
			s.unchanged(t, before)
			if got, _ := s.certificate(t, fp); !cmp.Equal(restricted, got) {
				t.Errorf("entry changed by a refused edit:\n%s", cmp.Diff(restricted, got))
			}
		})
	}

	for _, tc := range []struct {
		name   string
		method string
		body   any
		want   api.Certificate
	}{
		{name: "ok/put the body the incus client sends", method: "PUT",
			body: `{"name":"renamed","type":"client","restricted":true,"projects":["p1","p2"],"certificate":"","description":"second"}`,
			want: api.Certificate{Name: "renamed", Type: "client", Restricted: true, Projects: []string{"p1", "p2"}, Description: "second"}},
		{name: "ok/put the body the lxd client sends, which clears the description", method: "PUT",
			body: `{"name":"renamed","type":"client","restricted":true,"projects":["p1","p2"],"certificate":""}`,
			want: api.Certificate{Name: "renamed", Type: "client", Restricted: true, Projects: []string{"p1", "p2"}}},
		{name: "ok/put back the object get returned, fingerprint included", method: "PUT",
			body: api.Certificate{Name: "again", Type: "client", Restricted: true, Projects: []string{"p1"}, Certificate: c.PEM(),
				Description: "third", Fingerprint: fp},
			want: api.Certificate{Name: "again", Type: "client", Restricted: true, Projects: []string{"p1"}, Description: "third"}},
		{name: "ok/patch with the fingerprint", method: "PATCH", body: map[string]string{"fingerprint": fp, "description": "fourth"},
			want: api.Certificate{Name: "again", Type: "client", Restricted: true, Projects: []string{"p1"}, Description: "fourth"}},
		{name: "ok/put leaves out restricted, projects and description: as lxd, they are cleared", method: "PUT",
			body: `{"name":"again","type":"client"}`,
			want: api.Certificate{Name: "again", Type: "client", Projects: []string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, s.call(t, nil, tc.method, path, tc.body), http.StatusOK)
			want := tc.want
			want.Certificate, want.Fingerprint = c.PEM(), fp
			if got, _ := s.certificate(t, fp); !cmp.Equal(want, got) {
				t.Errorf("entry (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
	}
}
