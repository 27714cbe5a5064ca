package service_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/serverinfo"
	"github.com/trustlog/trustlog/functions/service"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// envelopeKeys is the key order of every envelope (spec §1.1).
var envelopeKeys = []string{"type", "status", "status_code", "operation", "error_code", "error", "metadata"}

// keysOf returns the keys of the JSON object raw, in wire order.
func keysOf(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

var etagRE = regexp.MustCompile(`^"[0-9a-f]{64}"$`)

// etagOf returns the ETag header a JSON value gets: its quoted hex SHA-256.
func etagOf(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// TestEnvelopes sends one request of each reply kind and checks the
// envelope's keys, their order and values, and the headers that go with it.
func TestEnvelopes(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert := s.validCert(t, "admin")
	fp := s.add(t, adminCert, adminReq())
	anon := s.client(t, nil)
	entry, _ := s.certificate(t, fp)
	for _, tc := range []struct {
		name         string
		method, path string
		body         any
		wantCode     int
		wantType     string
		wantStatus   string
		wantSC       int
		wantErr      string
		wantMeta     string // exact metadata JSON, "" to skip
		wantETag     any    // value whose hash is the ETag; nil means no ETag
		wantLocation string // regexp; "" means no Location
	}{
		{name: "ok/sync root", method: "GET", path: "/", wantCode: 200, wantType: "sync", wantStatus: "Success", wantSC: 200,
			wantMeta: `["/1.0"]`},
		{name: "ok/sync with etag", method: "GET", path: "/1.0", wantCode: 200, wantType: "sync", wantStatus: "Success", wantSC: 200,
			wantETag: map[string]string{}},
		{name: "ok/sync certificate with etag", method: "GET", path: "/1.0/certificates/" + fp, wantCode: 200, wantType: "sync",
			wantStatus: "Success", wantSC: 200, wantETag: entry},
		{name: "ok/empty sync", method: "PATCH", path: "/1.0", body: `{"config":{"user.x":"1"}}`, wantCode: 200, wantType: "sync",
			wantStatus: "Success", wantSC: 200, wantMeta: `{}`},
		{name: "ok/created", method: "POST", path: "/1.0/certificates", body: api.CertificatesPost{Certificate: s.validCert(t, "new").B64()},
			wantCode: 201, wantType: "sync", wantStatus: "Success", wantSC: 200, wantMeta: `null`,
			wantLocation: `^/1\.0/certificates/[0-9a-f]{64}$`},
		{name: "ok/async", method: "POST", path: "/1.0/certificates", body: api.CertificatesPost{Name: "tok", Token: true},
			wantCode: 202, wantType: "async", wantStatus: "Operation created", wantSC: 100,
			wantLocation: `^/1\.0/operations/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
		{name: "fail/error unknown path", method: "GET", path: "/2.0", wantCode: 404, wantType: "error", wantErr: "not found",
			wantMeta: `null`},
		{name: "fail/error unknown 1.0 path", method: "GET", path: "/1.0/instances", wantCode: 404, wantType: "error",
			wantErr: "not found", wantMeta: `null`},
		{name: "fail/error", method: "GET", path: "/1.0/certificates/" + strings.Repeat("0", 64), wantCode: 404, wantType: "error",
			wantErr: "Certificate not found", wantMeta: `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := s.call(t, nil, tc.method, tc.path, tc.body)
			if rep.Code != tc.wantCode {
				t.Fatalf("HTTP %d, want %d: %s", rep.Code, tc.wantCode, rep)
			}
			if diff := cmp.Diff(envelopeKeys, keysOf(t, rep.Raw)); diff != "" {
				t.Errorf("envelope keys (-want +got):\n%s", diff)
			}
			if ct := rep.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			e := rep.Env
			wantOp := ""
			if tc.wantType == "async" {
				wantOp = rep.Header.Get("Location")
			}
			errCode := 0
			if tc.wantType == "error" {
				errCode = tc.wantCode
			}
			if e.Type != tc.wantType || e.Status != tc.wantStatus || e.StatusCode != tc.wantSC || e.Operation != wantOp ||
				e.ErrorCode != errCode || e.Error != tc.wantErr {
				t.Errorf("envelope %s", rep)
			}
			if tc.wantMeta != "" && string(e.Metadata) != tc.wantMeta {
				t.Errorf("metadata %s, want %s", e.Metadata, tc.wantMeta)
			}
			nosniff := rep.Header.Get("X-Content-Type-Options")
			if (tc.wantType == "error") != (nosniff == "nosniff") {
				t.Errorf("X-Content-Type-Options %q on a %s reply", nosniff, tc.wantType)
			}
			etag := rep.Header.Get("ETag")
			switch {
			case tc.wantETag == nil && etag != "":
				t.Errorf("unexpected ETag %q", etag)
			case tc.wantETag != nil && (!etagRE.MatchString(etag) || etag != etagOf(t, tc.wantETag)):
				t.Errorf("ETag %q, want %q", etag, etagOf(t, tc.wantETag))
			}
			loc := rep.Header.Get("Location")
			switch {
			case tc.wantLocation == "" && loc != "":
				t.Errorf("unexpected Location %q", loc)
			case tc.wantLocation != "" && !regexp.MustCompile(tc.wantLocation).MatchString(loc):
				t.Errorf("Location %q does not match %s", loc, tc.wantLocation)
			}
			if tc.wantType == "async" {
				var op api.Operation
				rep.metadata(t, &op)
				if "/1.0/operations/"+op.ID != loc || op.Class != "token" || op.StatusCode != 103 {
					t.Errorf("operation %+v under Location %s", op, loc)
				}
			}
		})
	}
	// The same shapes reach TLS clients, trusted or not.
	rep := s.call(t, anon, "GET", "/", nil)
	if rep.Code != 200 || string(rep.Env.Metadata) != `["/1.0"]` {
		t.Errorf("GET / untrusted: %s", rep)
	}
	wantError(t, s.call(t, anon, "GET", "/nothing/here", nil), 404, "not found")
	wantError(t, s.call(t, s.client(t, adminCert), "DELETE", "/1.0", nil), 404, "not found")
}

// serverKeys are the keys of the untrusted server object, in wire order;
// a trusted caller gets trustedKeys after them.
var (
	serverKeys  = []string{"config", "api_extensions", "api_status", "api_version", "auth", "public", "auth_methods", "client_certificate"}
	trustedKeys = []string{"auth_user_name", "auth_user_method", "environment"}
)

// TestServerViews checks GET /1.0 for each kind of caller: what it says
// about the caller, which configuration it shows, and the environment.
func TestServerViews(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert, restrictedCert, metricsCert, stranger := s.validCert(t, "admin"), s.validCert(t, "restricted"), s.validCert(t, "metrics"), s.validCert(t, "stranger")
	s.add(t, adminCert, adminReq())
	s.add(t, restrictedCert, api.CertificatesPost{Restricted: true, Projects: []string{"p1"}})
	s.add(t, metricsCert, api.CertificatesPost{Type: "metrics"})
	cfg := map[string]string{"user.ui.theme": "dark", "user.secret": "s3cr3t", "core.remote_token_expiry": "1d"}
	wantCode(t, s.call(t, nil, "PATCH", "/1.0", api.ServerPut{Config: cfg}), 200)
	uiOnly := map[string]string{"user.ui.theme": "dark"}

	for _, tc := range []struct {
		name       string
		c          func() *reply
		wantAuth   string
		wantName   string
		wantMethod string
		wantConfig map[string]string
		wantCert   bool
	}{
		{name: "ok/no certificate", c: func() *reply { r := s.call(t, s.client(t, nil), "GET", "/1.0", nil); return &r },
			wantAuth: "untrusted", wantConfig: uiOnly},
		{name: "ok/unknown certificate", c: func() *reply { r := s.call(t, s.client(t, stranger), "GET", "/1.0", nil); return &r },
			wantAuth: "untrusted", wantConfig: uiOnly, wantCert: true},
		{name: "ok/metrics certificate sees the untrusted view", c: func() *reply { r := s.call(t, s.client(t, metricsCert), "GET", "/1.0", nil); return &r },
			wantAuth: "untrusted", wantConfig: uiOnly, wantCert: true},
		{name: "ok/admin over tls", c: func() *reply { r := s.call(t, s.client(t, adminCert), "GET", "/1.0", nil); return &r },
			wantAuth: "trusted", wantName: adminCert.FP, wantMethod: "tls", wantConfig: cfg, wantCert: true},
		{name: "ok/restricted over tls", c: func() *reply { r := s.call(t, s.client(t, restrictedCert), "GET", "/1.0/", nil); return &r },
			wantAuth: "trusted", wantName: restrictedCert.FP, wantMethod: "tls", wantConfig: uiOnly, wantCert: true},
		{name: "ok/local user over the unix socket", c: func() *reply { r := s.call(t, nil, "GET", "/1.0", nil); return &r },
			wantAuth: "trusted", wantName: localUser, wantMethod: "unix", wantConfig: cfg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := *tc.c()
			wantCode(t, rep, 200)
			var meta json.RawMessage
			rep.metadata(t, &meta)
			wantKeys := serverKeys
			if tc.wantAuth == "trusted" {
				wantKeys = append(append([]string{}, serverKeys...), trustedKeys...)
			}
			if diff := cmp.Diff(wantKeys, keysOf(t, meta)); diff != "" {
				t.Errorf("server object keys (-want +got):\n%s", diff)
			}
			var srv api.Server
			rep.metadata(t, &srv)
			want := api.Server{
				Config: tc.wantConfig, APIExtensions: serverinfo.Extensions, APIStatus: "stable", APIVersion: "1.0",
				Auth: tc.wantAuth, AuthMethods: []string{"tls"}, ClientCertificate: tc.wantCert,
				AuthUserName: tc.wantName, AuthUserMethod: tc.wantMethod,
			}
			got := srv
			got.Environment = nil
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("server object (-want +got):\n%s", diff)
			}
			if etag := rep.Header.Get("ETag"); etag != etagOf(t, tc.wantConfig) {
				t.Errorf("ETag %q, want the hash of the config shown %q", etag, etagOf(t, tc.wantConfig))
			}
			if tc.wantAuth == "untrusted" {
				if srv.Environment != nil {
					t.Errorf("environment shown to an untrusted caller")
				}
				return
			}
			env := srv.Environment
			if env == nil {
				t.Fatal("no environment for a trusted caller")
			}
			if env.Certificate != s.host.pem || env.CertificateFingerprint != s.host.fp {
				t.Errorf("environment certificate %q (%s), want the served one (%s)", env.Certificate, env.CertificateFingerprint, s.host.fp)
			}
			sum := sha256.Sum256(s.https.Certificate().Raw)
			if env.CertificateFingerprint != hex.EncodeToString(sum[:]) {
				t.Errorf("certificate_fingerprint is not the served certificate's")
			}
			if !cmp.Equal(env.Addresses, []string{s.host.addr}) || env.Project != "default" || env.ServerName != "testhost" ||
				env.Server != "trustlog" || env.ServerVersion != serverinfo.Version || env.ServerPid != os.Getpid() {
				t.Errorf("environment %+v", env)
			}
		})
	}

	// The project query parameter is echoed in the environment.
	srv, _ := s.server(t, s.client(t, adminCert), "")
	if srv.Environment.Project != "default" {
		t.Errorf("project %q", srv.Environment.Project)
	}
	rep := s.call(t, s.client(t, adminCert), "GET", "/1.0?project=p1", nil)
	rep.metadata(t, &srv)
	if srv.Environment.Project != "p1" {
		t.Errorf("project %q, want p1", srv.Environment.Project)
	}
}

// TestServerViewFollowsChanges: GET /1.0 replies are encoded once per view
// and reused; every input of the reply still shows at once: the caller,
// the configuration, the project, the served certificate and addresses.
func TestServerViewFollowsChanges(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	one, two := s.validCert(t, "one"), s.validCert(t, "two")
	s.add(t, one, adminReq())
	s.add(t, two, api.CertificatesPost{Restricted: true, Projects: []string{"p1"}})
	c1, c2, anon := s.client(t, one), s.client(t, two), s.client(t, nil)

	first, rep1 := s.server(t, c1)
	again, rep2 := s.server(t, c1)
	if rep1.String() != rep2.String() || rep1.Header.Get("ETag") != rep2.Header.Get("ETag") {
		t.Errorf("the same view differs between two requests:\n%s\n%s", rep1, rep2)
	}
	if first.AuthUserName != one.FP || again.AuthUserName != one.FP {
		t.Errorf("auth_user_name %q, %q, want %s", first.AuthUserName, again.AuthUserName, one.FP)
	}
	if srv, _ := s.server(t, c2); srv.AuthUserName != two.FP || srv.Auth != "trusted" {
		t.Errorf("second caller sees %q (%s), want its own name %s", srv.AuthUserName, srv.Auth, two.FP)
	}
	if srv, _ := s.server(t, anon); srv.Auth != "untrusted" || srv.Environment != nil || srv.AuthUserName != "" {
		t.Errorf("untrusted caller sees %+v", srv)
	}

	wantCode(t, s.call(t, nil, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"user.ui.theme": "dark"}}), 200)
	for _, c := range []*http.Client{c1, c2, anon} {
		srv, rep := s.server(t, c)
		if srv.Config["user.ui.theme"] != "dark" || rep.Header.Get("ETag") != etagOf(t, map[string]string{"user.ui.theme": "dark"}) {
			t.Errorf("after a config change: config %v, ETag %s", srv.Config, rep.Header.Get("ETag"))
		}
	}

	var srv api.Server
	s.call(t, c1, "GET", "/1.0?project=p1", nil).metadata(t, &srv)
	if srv.Environment.Project != "p1" {
		t.Errorf("project %q, want p1", srv.Environment.Project)
	}
	if srv, _ := s.server(t, c1); srv.Environment.Project != "default" {
		t.Errorf("project %q after a request for p1, want default", srv.Environment.Project)
	}

	rotated := s.validCert(t, "rotated-server")
	s.host.set(rotated.PEM(), rotated.FP)
	srv, _ = s.server(t, c1)
	if srv.Environment.CertificateFingerprint != rotated.FP || srv.Environment.Certificate != rotated.PEM() {
		t.Errorf("environment certificate %s after a rotation, want %s", srv.Environment.CertificateFingerprint, rotated.FP)
	}
	s.host.set(rotated.PEM(), rotated.FP, "192.0.2.7:8443")
	srv, _ = s.server(t, c1)
	if !cmp.Equal(srv.Environment.Addresses, []string{s.host.addr, "192.0.2.7:8443"}) {
		t.Errorf("addresses %v after the listener changed", srv.Environment.Addresses)
	}
}

// TestExpectsAuthentication checks X-Incus-authenticated and
// X-LXD-authenticated turn the untrusted view of GET /1.0 into a 403, and
// change nothing for a trusted caller.
func TestExpectsAuthentication(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert, stranger := s.validCert(t, "admin"), s.validCert(t, "stranger")
	s.add(t, adminCert, adminReq())
	before := s.lastSeq(t)
	for _, tc := range []struct {
		name     string
		c        *cert
		header   []string
		wantCode int
	}{
		{name: "ok/untrusted without the header", wantCode: 200},
		{name: "fail/untrusted with x-incus-authenticated", header: []string{"X-Incus-authenticated", "true"}, wantCode: 403},
		{name: "fail/untrusted with x-lxd-authenticated", header: []string{"X-LXD-authenticated", "true"}, wantCode: 403},
		{name: "fail/unknown certificate with x-incus-authenticated", c: stranger, header: []string{"X-Incus-authenticated", "true"}, wantCode: 403},
		{name: "ok/trusted with x-incus-authenticated", c: adminCert, header: []string{"X-Incus-authenticated", "true"}, wantCode: 200},
		{name: "ok/trusted with x-lxd-authenticated", c: adminCert, header: []string{"X-LXD-authenticated", "true"}, wantCode: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := s.call(t, s.client(t, tc.c), "GET", "/1.0", nil, tc.header...)
			if tc.wantCode == 403 {
				wantError(t, rep, 403, "not authorized")
				return
			}
			wantCode(t, rep, tc.wantCode)
		})
	}
	// A POST that expects authentication is refused before it is read.
	wantError(t, s.call(t, s.client(t, stranger), "POST", "/1.0/certificates", api.CertificatesPost{TrustToken: "x"},
		"X-Incus-authenticated", "true"), 403, "not authorized")
	s.unchanged(t, before)
}

// configEvent is a ConfigChanged as "key=value".
func configEvents(t *testing.T, envs []events.Envelope) []string {
	t.Helper()
	out := []string{}
	for _, p := range payloads(t, envs) {
		c, ok := p.(*events.ConfigChanged)
		if !ok {
			t.Fatalf("event %T, want a config change", p)
		}
		out = append(out, c.Key+"="+c.Value)
	}
	return out
}

// TestServerConfig runs PUT and PATCH /1.0 in sequence: who may, what is
// valid, replace against merge, If-Match, and exactly one event per
// changed key (none at all when the request fails).
func TestServerConfig(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert, restrictedCert, metricsCert := s.validCert(t, "admin"), s.validCert(t, "restricted"), s.validCert(t, "metrics")
	s.add(t, adminCert, adminReq())
	s.add(t, restrictedCert, api.CertificatesPost{Restricted: true})
	s.add(t, metricsCert, api.CertificatesPost{Type: "metrics"})
	admin, restricted, metrics, anon := s.client(t, adminCert), s.client(t, restrictedCert), s.client(t, metricsCert), s.client(t, nil)

	// etag returns the current ETag of /1.0, as the admin sees it.
	etag := func() string { _, rep := s.server(t, nil); return rep.Header.Get("ETag") }
	var staleTag string
	type step struct {
		name       string
		c          *http.Client // nil: the admin socket
		method     string
		body       any
		ifMatch    func() string
		wantCode   int
		wantErr    string
		wantEvents []string
		wantConfig map[string]string
		wantActor  string
	}
	for _, tc := range []step{
		{name: "fail/restricted put", c: restricted, method: "PUT", body: `{"config":{"user.a":"1"}}`, wantCode: 403,
			wantErr: "Certificate is restricted", wantConfig: map[string]string{}},
		{name: "fail/restricted patch", c: restricted, method: "PATCH", body: `{"config":{"user.a":"1"}}`, wantCode: 403,
			wantErr: "Certificate is restricted", wantConfig: map[string]string{}},
		{name: "fail/metrics patch", c: metrics, method: "PATCH", body: `{"config":{"user.a":"1"}}`, wantCode: 403,
			wantErr: "not authorized", wantConfig: map[string]string{}},
		{name: "fail/untrusted put", c: anon, method: "PUT", body: `{"config":{"user.a":"1"}}`, wantCode: 403,
			wantErr: "not authorized", wantConfig: map[string]string{}},
		{name: "ok/patch two keys", method: "PATCH", body: `{"config":{"user.b":"2","user.a":"1"}}`, wantCode: 200,
			wantEvents: []string{"user.a=1", "user.b=2"}, wantConfig: map[string]string{"user.a": "1", "user.b": "2"}, wantActor: "unix/" + localUser},
		{name: "ok/patch with no change appends nothing", method: "PATCH", body: `{"config":{"user.a":"1"}}`, wantCode: 200,
			wantConfig: map[string]string{"user.a": "1", "user.b": "2"}},
		{name: "ok/patch merges", c: admin, method: "PATCH", body: `{"config":{"user.c":"3"}}`, wantCode: 200,
			wantEvents: []string{"user.c=3"}, wantConfig: map[string]string{"user.a": "1", "user.b": "2", "user.c": "3"},
			wantActor: "tls/" + adminCert.FP},
		{name: "ok/patch with empty value unsets", method: "PATCH", body: `{"config":{"user.b":""}}`, wantCode: 200,
			wantEvents: []string{"user.b="}, wantConfig: map[string]string{"user.a": "1", "user.c": "3"}},
		{name: "ok/put replaces", method: "PUT", body: `{"config":{"user.d":"4","user.a":"1"}}`, wantCode: 200,
			wantEvents: []string{"user.c=", "user.d=4"}, wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/unknown key", method: "PATCH", body: `{"config":{"core.nope":"1"}}`, wantCode: 400,
			wantErr: `Invalid config: unknown configuration key "core.nope"`, wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/unknown key unset by patch", method: "PATCH", body: `{"config":{"core.nope":""}}`, wantCode: 400,
			wantErr: `Invalid config: unknown configuration key "core.nope"`, wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/unknown key unset by put", method: "PUT", body: `{"config":{"user.a":"1","user.d":"4","core.nope":""}}`, wantCode: 400,
			wantErr: `Invalid config: unknown configuration key "core.nope"`, wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/bad https address", method: "PATCH", body: `{"config":{"core.https_address":"not a host:x"}}`, wantCode: 400,
			wantErr: `Invalid config: core.https_address: invalid host "not a host"`, wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/one bad key among good ones changes nothing", method: "PUT",
			body: `{"config":{"user.e":"5","core.https_address":"127.0.0.1:99999"}}`, wantCode: 400,
			wantErr: "Invalid config: core.https_address: ...", wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/malformed json", method: "PATCH", body: `{"config":`, wantCode: 400, wantErr: "unexpected EOF",
			wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/config not a map of strings", method: "PATCH", body: `{"config":{"user.a":1}}`, wantCode: 400,
			wantErr:    "json: cannot unmarshal number into Go struct field ServerPut.config of type string",
			wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/body over the route's 256 KiB", method: "PATCH", body: `{"config":{"user.big":"` + strings.Repeat("x", 256<<10) + `"}}`, wantCode: 413,
			wantErr: "request body larger than 262144 bytes", wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "fail/wrong if-match", method: "PUT", body: `{"config":{"user.a":"2"}}`, ifMatch: func() string { return `"abc"` }, wantCode: 412,
			wantErr: "ETag doesn't match: ...", wantConfig: map[string]string{"user.a": "1", "user.d": "4"}},
		{name: "ok/right if-match", method: "PUT", body: `{"config":{"user.a":"2","user.d":"4"}}`,
			ifMatch: func() string { staleTag = etag(); return staleTag }, wantCode: 200,
			wantEvents: []string{"user.a=2"}, wantConfig: map[string]string{"user.a": "2", "user.d": "4"}},
		{name: "fail/stale if-match", method: "PATCH", body: `{"config":{"user.a":"3"}}`, ifMatch: func() string { return staleTag },
			wantCode: 412, wantErr: "ETag doesn't match: ...", wantConfig: map[string]string{"user.a": "2", "user.d": "4"}},
		{name: "ok/known keys", c: admin, method: "PATCH",
			body:     `{"config":{"core.https_address":"[::1]","core.remote_token_expiry":"2H","core.trust_ca_certificates":"false"}}`,
			wantCode: 200, wantEvents: []string{"core.https_address=[::1]", "core.remote_token_expiry=2H", "core.trust_ca_certificates=false"},
			wantConfig: map[string]string{"user.a": "2", "user.d": "4", "core.https_address": "[::1]",
				"core.remote_token_expiry": "2H", "core.trust_ca_certificates": "false"}},
		{name: "ok/put of nothing unsets everything", method: "PUT", body: `{}`, wantCode: 200,
			wantEvents: []string{"core.https_address=", "core.remote_token_expiry=", "core.trust_ca_certificates=", "user.a=", "user.d="},
			wantConfig: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.lastSeq(t)
			var header []string
			if tc.ifMatch != nil {
				header = []string{"If-Match", tc.ifMatch()}
			}
			rep := s.call(t, tc.c, tc.method, "/1.0", tc.body, header...)
			if tc.wantErr != "" {
				wantError(t, rep, tc.wantCode, tc.wantErr)
				s.unchanged(t, before)
			} else {
				wantCode(t, rep, tc.wantCode)
				if string(rep.Env.Metadata) != "{}" {
					t.Errorf("metadata %s, want {}", rep.Env.Metadata)
				}
				envs := s.since(t, before)
				want := tc.wantEvents
				if want == nil {
					want = []string{}
				}
				if diff := cmp.Diff(want, configEvents(t, envs)); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
				for _, e := range envs {
					if got := e.ActorMethod + "/" + e.ActorName; tc.wantActor != "" && got != tc.wantActor {
						t.Errorf("actor %s, want %s", got, tc.wantActor)
					}
				}
			}
			srv, _ := s.server(t, nil)
			if diff := cmp.Diff(tc.wantConfig, srv.Config); diff != "" {
				t.Errorf("config after (-want +got):\n%s", diff)
			}
		})
	}
}

// goldenPath returns testdata/<name>.
func goldenPath(name string) string { return filepath.Join("testdata", name) }

// checkGolden compares raw JSON, with each key of repl replaced by its
// value and indented, against testdata/name (rewritten with -update).
func checkGolden(t *testing.T, name string, raw []byte, repl map[string]string) {
	t.Helper()
	for _, old := range sortedByLength(repl) {
		raw = bytes.ReplaceAll(raw, []byte(old), []byte(repl[old]))
	}
	raw = serverPid.ReplaceAll(raw, []byte(`"server_pid":1`))
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		t.Fatalf("%s: %v: %s", name, err, raw)
	}
	buf.WriteByte('\n')
	path := goldenPath(name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", name, diff)
	}
}

var serverPid = regexp.MustCompile(`"server_pid":\d+`)

// sortedByLength orders the keys longest first, so that a value is
// replaced before any of its substrings.
func sortedByLength(m map[string]string) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return keys
}

// jsonString returns s as it appears inside a JSON string.
func jsonString(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw[1 : len(raw)-1])
}

// TestGolden pins the main wire shapes: the server object untrusted and
// trusted, a certificate and the certificate list, and an error, with
// volatile values (fingerprints, PEM, addresses, the pid) normalised.
func TestGolden(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	adminCert := s.validCert(t, "admin")
	other := s.validCert(t, "laptop")
	s.add(t, adminCert, adminReq())
	s.add(t, other, api.CertificatesPost{Name: "laptop", Restricted: true, Projects: []string{"default", "p1"}, Description: "Alice's laptop"})
	wantCode(t, s.call(t, nil, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"user.ui.theme": "dark", "user.note": "hidden"}}), 200)
	repl := map[string]string{
		adminCert.FP:                "<admin-fingerprint>",
		other.FP:                    "<laptop-fingerprint>",
		jsonString(adminCert.PEM()): "<admin-pem>",
		jsonString(other.PEM()):     "<laptop-pem>",
		jsonString(s.host.pem):      "<server-pem>",
		s.host.fp:                   "<server-fingerprint>",
		s.host.addr:                 "<address>",
	}
	admin := s.client(t, adminCert)
	for _, tc := range []struct {
		name   string
		c      *http.Client
		method string
		path   string
	}{
		{name: "server_untrusted.json", c: s.client(t, nil), method: "GET", path: "/1.0"},
		{name: "server_trusted.json", c: admin, method: "GET", path: "/1.0"},
		{name: "certificate.json", c: admin, method: "GET", path: "/1.0/certificates/" + other.FP},
		{name: "certificates.json", c: admin, method: "GET", path: "/1.0/certificates"},
		{name: "certificates_recursion1.json", c: admin, method: "GET", path: "/1.0/certificates?recursion=1&filter="},
		{name: "error_forbidden.json", c: s.client(t, nil), method: "GET", path: "/1.0/certificates"},
		{name: "metadata_configuration.json", c: s.client(t, nil), method: "GET", path: "/1.0/metadata/configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := s.call(t, tc.c, tc.method, tc.path, nil)
			checkGolden(t, tc.name, rep.Raw, repl)
		})
	}
}

// adminReq is the request that trusts an unrestricted client.
func adminReq() api.CertificatesPost { return api.CertificatesPost{} }

// TestConfigValidate checks service.New refuses an incomplete Config.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	good := service.Config{Model: s.proj, Log: s.store, Host: s.host, Source: "/trustlog/x", SealingKey: make([]byte, 32)}
	for _, tc := range []struct {
		name    string
		edit    func(*service.Config)
		wantErr string
	}{
		{name: "ok/complete", edit: func(*service.Config) {}},
		{name: "fail/no model", edit: func(c *service.Config) { c.Model = nil }, wantErr: "service: Model is required"},
		{name: "fail/no log", edit: func(c *service.Config) { c.Log = nil }, wantErr: "service: Log is required"},
		{name: "fail/no host", edit: func(c *service.Config) { c.Host = nil }, wantErr: "service: Host is required"},
		{name: "fail/no source", edit: func(c *service.Config) { c.Source = "" }, wantErr: "service: Source is required"},
		{name: "fail/short key", edit: func(c *service.Config) { c.SealingKey = make([]byte, 16) }, wantErr: "service: SealingKey must be 32 bytes"},
		{name: "ok/no sealing key (read-only host)", edit: func(c *service.Config) { c.SealingKey = nil }},
		{name: "ok/one function", edit: func(c *service.Config) { c.Functions = []string{service.FunctionCertificates} }},
		{name: "fail/unknown function", edit: func(c *service.Config) { c.Functions = []string{"nope"} }, wantErr: `service: unknown function "nope" (known: server, certificates, operations, pki, identities, metrics)`},
		{name: "fail/everything missing", edit: func(c *service.Config) { *c = service.Config{} },
			wantErr: "service: Model is required\nservice: Log is required\nservice: Host is required\nservice: Source is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := service.New(cfg)
			if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
				t.Fatalf("New() error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
