package service_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/api"
)

// badNames are names neither a trust-store entry nor a TLS identity may
// have, with what the refusal says of them. (Invalid UTF-8 cannot arrive
// in JSON: the decoder replaces it; NameProblem's own test covers it.)
var badNames = []struct{ name, problem string }{
	{"../../x", `must not start with "-" or contain "/"`},
	{"a/b", `must not start with "-" or contain "/"`},
	{"-flag", `must not start with "-" or contain "/"`},
	{"evil\r\nlevel=admin", "must not contain control characters or line breaks"},
	{"line\nbreak", "must not contain control characters or line breaks"},
	{"bell\a", "must not contain control characters or line breaks"},
	{"nul\x00", "must not contain control characters or line breaks"},
	{"del\x7f", "must not contain control characters or line breaks"},
	{"c1\u0085", "must not contain control characters or line breaks"},
	{"sep\u2028", "must not contain control characters or line breaks"},
	{strings.Repeat("x", 256), "must not be longer than 255 bytes"},
}

// TestCertificateNames: every way a certificate name is set refuses the
// bad names with a 400 and appends nothing; the longest allowed name and
// Unicode are fine. A common name that is no valid name is passed over
// when the entry is named after it.
func TestCertificateNames(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	fp := s.add(t, s.validCert(t, "entry"), api.CertificatesPost{Name: "entry"})
	for _, bad := range badNames {
		want := "Certificate name " + bad.problem
		for _, tc := range []struct {
			how, method, path string
			body              any
		}{
			{"add", "POST", "/1.0/certificates", api.CertificatesPost{Name: bad.name, Certificate: s.validCert(t, "x").B64()}},
			{"token", "POST", "/1.0/certificates", api.CertificatesPost{Name: bad.name, Token: true}},
			{"patch", "PATCH", "/1.0/certificates/" + fp, map[string]string{"name": bad.name}},
			{"put", "PUT", "/1.0/certificates/" + fp, api.CertificatePut{Name: bad.name, Type: "client"}},
		} {
			t.Run("fail/"+tc.how+"/"+strings.ToValidUTF8(bad.name[:min(len(bad.name), 20)], "?"), func(t *testing.T) {
				before := s.lastSeq(t)
				wantError(t, s.call(t, nil, tc.method, tc.path, tc.body), http.StatusBadRequest, want)
				s.unchanged(t, before)
			})
		}
	}
	for _, name := range []string{strings.Repeat("x", 255), "Ünïcødé laptop", "alice@example.com"} {
		t.Run("ok/"+name[:min(len(name), 20)], func(t *testing.T) {
			wantCode(t, s.call(t, nil, "PATCH", "/1.0/certificates/"+fp, map[string]string{"name": name}), http.StatusOK)
			if c, _ := s.certificate(t, fp); c.Name != name {
				t.Errorf("name %q, want %q", c.Name, name)
			}
		})
	}
	t.Run("ok/a common name with a line break is passed over", func(t *testing.T) {
		c := s.validCert(t, "forged\nname")
		s.add(t, c, api.CertificatesPost{})
		if got, _ := s.certificate(t, c.FP); got.Name != localUser {
			t.Errorf("named %q, want the local user %q", got.Name, localUser)
		}
	})
}

// TestIdentityNames: a TLS identity's name follows the certificate name
// rules, and must not be "." or "..", whether the identity is made from a
// certificate or as a pending one with a token.
func TestIdentityNames(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	cases := append([]struct{ name, problem string }{
		{".", `must not be "." or ".."`},
		{"..", `must not be "." or ".."`},
	}, badNames...)
	for _, bad := range cases {
		want := "Identity name " + bad.problem
		for _, tc := range []struct {
			how  string
			body api.IdentitiesTLSPost
		}{
			{"certificate", api.IdentitiesTLSPost{Name: bad.name, Certificate: s.validCert(t, "x").B64()}},
			{"token", api.IdentitiesTLSPost{Name: bad.name, Token: true}},
		} {
			t.Run("fail/"+tc.how+"/"+strings.ToValidUTF8(bad.name[:min(len(bad.name), 20)], "?"), func(t *testing.T) {
				before := s.lastSeq(t)
				wantError(t, s.call(t, nil, "POST", "/1.0/auth/identities/tls", tc.body), http.StatusBadRequest, want)
				s.unchanged(t, before)
			})
		}
	}
	for _, name := range []string{strings.Repeat("y", 255), "ci runner", "..x"} {
		t.Run("ok/"+name[:min(len(name), 20)], func(t *testing.T) {
			wantCode(t, s.call(t, nil, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: name, Token: true}),
				http.StatusCreated)
		})
	}
}
