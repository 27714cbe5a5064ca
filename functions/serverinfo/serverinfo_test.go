package serverinfo_test

// The server object's wire behaviour (GET /1.0 views, PUT and PATCH over
// real TLS and the event stream) is tested through the assembled API in
// functions/service; these tests pin down the configuration rules.

import (
	"slices"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/serverinfo"
)

// TestValidateKey covers every known key with good and bad values,
// user.* keys and unknown keys.
func TestValidateKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		key     string
		value   string
		wantErr string // substring; "" means valid
	}{
		{name: "ok/user key", key: "user.foo", value: "anything at all"},
		{name: "ok/user ui key", key: "user.ui.theme", value: "dark"},
		{name: "ok/user key unset", key: "user.foo", value: ""},
		{name: "fail/bare user prefix", key: "user.", value: "x", wantErr: `unknown configuration key "user."`},
		{name: "fail/unknown core key", key: "core.nope", value: "1", wantErr: `unknown configuration key "core.nope"`},
		{name: "fail/unknown key even when unset", key: "core.nope", value: "", wantErr: `unknown configuration key "core.nope"`},
		{name: "fail/lxd key trustlog does not know", key: "core.trust_password", value: "x", wantErr: "unknown configuration key"},
		{name: "ok/https address", key: "core.https_address", value: "127.0.0.1:8443"},
		{name: "ok/https address without port", key: "core.https_address", value: "[::1]"},
		{name: "ok/https address unset", key: "core.https_address", value: ""},
		{name: "fail/https address bad host", key: "core.https_address", value: "not a host:x", wantErr: "core.https_address: invalid host"},
		{name: "fail/https address bad port", key: "core.https_address", value: "127.0.0.1:99999", wantErr: `core.https_address: invalid port "99999"`},
		{name: "ok/token expiry", key: "core.remote_token_expiry", value: "1d 12H"},
		{name: "fail/token expiry", key: "core.remote_token_expiry", value: "soon", wantErr: "core.remote_token_expiry: invalid expiry"},
		{name: "ok/advertised addresses", key: "core.https_advertise_addresses", value: "203.0.113.5:8443, [2001:db8::1]:443,host.example:1"},
		{name: "fail/advertised address without port", key: "core.https_advertise_addresses", value: "203.0.113.5", wantErr: "must be host:port"},
		{name: "fail/advertised address port zero", key: "core.https_advertise_addresses", value: "203.0.113.5:0", wantErr: "invalid port"},
		{name: "fail/advertised address bad host", key: "core.https_advertise_addresses", value: "bad_host:1", wantErr: "invalid host"},
		{name: "ok/trust ca certificates", key: "core.trust_ca_certificates", value: "true"},
		{name: "fail/trust ca certificates", key: "core.trust_ca_certificates", value: "yes please", wantErr: `"yes please" is not a boolean`},
		{name: "ok/crl fail closed", key: "core.crl_fail_closed", value: "0"},
		{name: "fail/crl fail closed", key: "core.crl_fail_closed", value: "maybe", wantErr: "not a boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := serverinfo.ValidateKey(tc.key, tc.value)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ValidateKey(%q, %q) = %v", tc.key, tc.value, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ValidateKey(%q, %q) = %v, want an error with %q", tc.key, tc.value, err, tc.wantErr)
			}
		})
	}
}

// TestNormalizeListenAddress covers the forms core.https_address takes.
func TestNormalizeListenAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "ok/host and port", in: "127.0.0.1:8443", want: "127.0.0.1:8443"},
		{name: "ok/bare ipv4 gets the default port", in: "127.0.0.1", want: "127.0.0.1:8443"},
		{name: "ok/bare ipv6", in: "::1", want: "[::1]:8443"},
		{name: "ok/bracketed ipv6", in: "[::1]", want: "[::1]:8443"},
		{name: "ok/ipv6 with port", in: "[2001:db8::1]:443", want: "[2001:db8::1]:443"},
		{name: "ok/every address", in: ":8443", want: ":8443"},
		{name: "ok/wildcard", in: "0.0.0.0", want: "0.0.0.0:8443"},
		{name: "ok/host name", in: "trust.example.com", want: "trust.example.com:8443"},
		{name: "ok/any port", in: "127.0.0.1:0", want: "127.0.0.1:0"},
		{name: "fail/empty", in: "", wantErr: true},
		{name: "fail/space in host", in: "not a host:x", wantErr: true},
		{name: "fail/port not a number", in: "127.0.0.1:abc", wantErr: true},
		{name: "fail/port too large", in: "127.0.0.1:65536", wantErr: true},
		{name: "fail/negative port", in: "127.0.0.1:-1", wantErr: true},
		{name: "fail/underscore in host", in: "bad_host", wantErr: true},
		{name: "fail/label starts with a dash", in: "-host.example", wantErr: true},
		{name: "fail/empty label", in: "a..b:1", wantErr: true},
		{name: "fail/label too long", in: strings.Repeat("a", 64) + ".example", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := serverinfo.NormalizeListenAddress(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NormalizeListenAddress(%q) = %q, %v; want error %v", tc.in, got, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("NormalizeListenAddress(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if _, err := serverinfo.NormalizeListenAddress(serverinfo.DefaultHTTPSAddress); err != nil {
		t.Errorf("the default address is invalid: %v", err)
	}
}

// TestExtensions checks the extensions the stock clients probe for in the
// trust flows are advertised, once each.
func TestExtensions(t *testing.T) {
	t.Parallel()
	for _, ext := range []string{"certificate_token", "certificate_update", "certificate_self_renewal",
		"certificate_project", "certificate_description", "auth_user", "explicit_trust_token"} {
		if !slices.Contains(serverinfo.Extensions, ext) {
			t.Errorf("extension %q is not advertised", ext)
		}
	}
	// "projects" would make clients call GET /1.0/projects, which Trustlog
	// does not serve.
	if slices.Contains(serverinfo.Extensions, "projects") {
		t.Errorf(`extension "projects" is advertised`)
	}
	seen := map[string]bool{}
	for _, ext := range serverinfo.Extensions {
		if seen[ext] {
			t.Errorf("extension %q advertised twice", ext)
		}
		seen[ext] = true
	}
}

// TestMemberKeys: the keys that name one machine are member-local; every
// other key is shared.
func TestMemberKeys(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{
		"core.https_address": true, "acme.http.port": true,
		"core.https_advertise_addresses": false, "acme.domain": false, "core.max_staleness": false, "user.x": false,
	} {
		if got := serverinfo.MemberKey(key); got != want {
			t.Errorf("MemberKey(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestValidateMemberName covers the names a member may have.
func TestValidateMemberName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{name: "ok/nats server name", in: "t1", ok: true},
		{name: "ok/host name", in: "node-3.example.com", ok: true},
		{name: "ok/underscore", in: "rack_2", ok: true},
		{name: "ok/63 characters", in: strings.Repeat("a", 63), ok: true},
		{name: "fail/empty", in: ""},
		{name: "fail/64 characters", in: strings.Repeat("a", 64)},
		{name: "fail/leading dash", in: "-a"},
		{name: "fail/leading dot", in: ".a"},
		{name: "fail/space", in: "a b"},
		{name: "fail/slash", in: "a/b"},
		{name: "fail/wildcard", in: "a*"},
		{name: "fail/non-ASCII", in: "nœud"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := serverinfo.ValidateMemberName(tc.in); (err == nil) != tc.ok {
				t.Errorf("ValidateMemberName(%q) = %v, want ok %v", tc.in, err, tc.ok)
			}
		})
	}
}
