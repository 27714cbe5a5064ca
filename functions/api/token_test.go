package api_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/api"
)

var (
	testFP     = strings.Repeat("0123456789abcdef", 4)
	testSecret = strings.Repeat("fedcba9876543210", 4)
)

// TestCertificateAddTokenWire pins the token's wire form: standard base64
// with padding of compact JSON, keys in the order the clients use.
func TestCertificateAddTokenWire(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tok  api.CertificateAddToken
		json string
	}{
		{
			name: "ok/expiring",
			tok: api.CertificateAddToken{
				ClientName: "foo", Fingerprint: testFP,
				Addresses: []string{"192.0.2.10:8443", "[2001:db8::10]:8443"}, Secret: testSecret,
				ExpiresAt: time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC),
			},
			json: `{"client_name":"foo","fingerprint":"` + testFP + `","addresses":["192.0.2.10:8443","[2001:db8::10]:8443"],` +
				`"secret":"` + testSecret + `","expires_at":"2026-03-04T05:06:07.89Z"}`,
		},
		{
			name: "ok/never-expires",
			tok:  api.CertificateAddToken{ClientName: "bar", Fingerprint: testFP, Addresses: []string{"a.example:443"}, Secret: testSecret},
			json: `{"client_name":"bar","fingerprint":"` + testFP + `","addresses":["a.example:443"],` +
				`"secret":"` + testSecret + `","expires_at":"0001-01-01T00:00:00Z"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			enc := tc.tok.Encode()
			if want := base64.StdEncoding.EncodeToString([]byte(tc.json)); enc != want {
				raw, _ := base64.StdEncoding.DecodeString(enc)
				t.Fatalf("Encode() decodes to\n%s\nwant\n%s", raw, tc.json)
			}
			got, err := api.DecodeCertificateAddToken(enc)
			if err != nil {
				t.Fatalf("Decode(Encode()) error: %v", err)
			}
			if diff := cmp.Diff(tc.tok, got); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeCertificateAddToken covers what the decoder accepts beyond its
// own output, and every rejection of spec §2.1.
func TestDecodeCertificateAddToken(t *testing.T) {
	t.Parallel()
	good := api.CertificateAddToken{ClientName: "c", Fingerprint: testFP, Addresses: []string{"h:1"}, Secret: testSecret}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	with := func(edit func(*api.CertificateAddToken)) string {
		t := good
		edit(&t)
		return t.Encode()
	}
	for _, tc := range []struct {
		name    string
		in      string
		want    api.CertificateAddToken
		wantErr string
	}{
		{name: "ok/plain", in: good.Encode(), want: good},
		{name: "ok/surrounding-whitespace", in: "  " + good.Encode() + "\n", want: good},
		{
			name: "ok/lxd-identity-type-kept",
			in:   b64(`{"client_name":"c","fingerprint":"` + testFP + `","addresses":["h:1"],"secret":"` + testSecret + `","expires_at":"0001-01-01T00:00:00Z","type":"Client certificate"}`),
			want: func() api.CertificateAddToken { g := good; g.Type = "Client certificate"; return g }(),
		},
		{
			name: "ok/keys-in-any-order",
			in:   b64(`{"secret":"` + testSecret + `","addresses":["h:1"],"fingerprint":"` + testFP + `","client_name":"c"}`),
			want: good,
		},
		{name: "fail/empty", in: "", wantErr: "token is not valid JSON"},
		{name: "fail/garbage", in: "garbage!", wantErr: "token is not valid base64"},
		// Six '?' hold an aligned "???", which standard base64 spells "Pz8/".
		{name: "fail/url-alphabet", in: strings.ReplaceAll(with(func(t *api.CertificateAddToken) { t.ClientName = "??????" }), "/", "_"), wantErr: "token is not valid base64"},
		{name: "fail/missing-padding", in: strings.TrimRight(b64(`{"client_name":"c"}`+" "), "="), wantErr: "token is not valid base64"},
		{name: "fail/truncated", in: good.Encode()[:len(good.Encode())/2+1], wantErr: "token is not valid base64"},
		{name: "fail/not-json", in: b64("not json"), wantErr: "token is not valid JSON"},
		{name: "fail/json-array", in: b64(`["c"]`), wantErr: "token is not valid JSON"},
		{name: "fail/json-null", in: b64("null"), wantErr: "no client name in certificate add token"},
		{name: "fail/wrong-field-type", in: b64(`{"client_name":1}`), wantErr: "token is not valid JSON"},
		{name: "fail/empty-client-name", in: with(func(t *api.CertificateAddToken) { t.ClientName = "" }), wantErr: "no client name in certificate add token"},
		{name: "fail/nil-addresses", in: with(func(t *api.CertificateAddToken) { t.Addresses = nil }), wantErr: "no server addresses in certificate add token"},
		{name: "fail/empty-addresses", in: with(func(t *api.CertificateAddToken) { t.Addresses = []string{} }), wantErr: "no server addresses in certificate add token"},
		{name: "fail/empty-secret", in: with(func(t *api.CertificateAddToken) { t.Secret = "" }), wantErr: "no secret in certificate add token"},
		{name: "fail/empty-fingerprint", in: with(func(t *api.CertificateAddToken) { t.Fingerprint = "" }), wantErr: "no certificate fingerprint in certificate add token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := api.DecodeCertificateAddToken(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), testSecret) {
					t.Fatalf("error %q shows the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}
