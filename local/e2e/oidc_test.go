package e2e_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
	"github.com/trustlog/trustlog/local/internal/oidctest"
)

// startClocked starts a daemon whose clock the test moves.
func startClocked(t *testing.T, clk *clock) *server {
	t.Helper()
	var logBuf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return newServer(t, d, &logBuf)
}

// configure PATCHes the server configuration through the unix socket.
func (s *server) configure(t *testing.T, cfg map[string]string) (int, api.Response) {
	t.Helper()
	return s.call(t, "PATCH", "/1.0", api.ServerPut{Config: cfg})
}

// enableOIDC points the server at p with the provider's device client.
func (s *server) enableOIDC(t *testing.T, p *oidctest.Provider, extra map[string]string) {
	t.Helper()
	cfg := map[string]string{"oidc.issuer": p.Issuer, "oidc.client.id": oidctest.ClientID}
	for k, v := range extra {
		cfg[k] = v
	}
	if code, env := s.configure(t, cfg); code != http.StatusOK {
		t.Fatalf("enable OIDC: %d %s", code, env.Error)
	}
}

// deviceToken runs the device authorization grant against p the way a
// CLI does (x/oauth2), approving the code by visiting its URL, and returns
// the tokens.
func deviceToken(t testing.TB, p *oidctest.Provider) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prov, err := gooidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := oauth2.Config{ClientID: oidctest.ClientID, Endpoint: prov.Endpoint(), Scopes: []string{"openid", "offline_access"}}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	resp, err := http.Get(da.VerificationURIComplete)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	return tok
}

// bearer sends a request over HTTPS with no client certificate and the
// given Authorization header value ("" for none).
func (s *server) bearer(t *testing.T, method, path, auth string, body any) (int, http.Header, api.Response) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, "https://"+s.d.HTTPSAddr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := tlsClient(nil).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var env api.Response
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s %s: decode: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, env
}

func serverOf(t *testing.T, env api.Response) api.Server {
	t.Helper()
	var srv api.Server
	if err := json.Unmarshal(env.Metadata, &srv); err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestOIDCConfig covers the oidc.* keys: validated when set (the issuer by
// discovery), nothing recorded on a refusal, and "oidc" offered in
// auth_methods once configured.
func TestOIDCConfig(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, oidctest.Options{})
	s := start(t)
	tests := []struct {
		name    string
		cfg     map[string]string
		wantErr string
	}{
		{name: "fail/unreachable issuer", cfg: map[string]string{"oidc.issuer": "http://127.0.0.1:1/", "oidc.client.id": "device"}, wantErr: "discovery"},
		{name: "fail/issuer without its trailing slash", cfg: map[string]string{"oidc.issuer": strings.TrimSuffix(p.Issuer, "/"), "oidc.client.id": "device"}, wantErr: "did not match"},
		{name: "fail/issuer not a URL", cfg: map[string]string{"oidc.issuer": "idp.example.com"}, wantErr: "not an http(s) issuer URL"},
		{name: "fail/device client without client", cfg: map[string]string{"oidc.device.client.id": "cli"}, wantErr: `"oidc.device.client.id" cannot be set if "oidc.client.id" is unset`},
		{name: "fail/scopes without openid", cfg: map[string]string{"oidc.scopes": "email profile"}, wantErr: `must contain the "openid" scope`},
		{name: "fail/default access", cfg: map[string]string{"oidc.default_access": "root"}, wantErr: `must be "none" or "admin"`},
		{name: "fail/client id with a space", cfg: map[string]string{"oidc.client.id": "a b"}, wantErr: "spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.lastSeq(t)
			code, env := s.configure(t, tt.cfg)
			if code != http.StatusBadRequest || !strings.Contains(env.Error, tt.wantErr) {
				t.Fatalf("PATCH = %d %q, want 400 containing %q", code, env.Error, tt.wantErr)
			}
			if after := s.lastSeq(t); after != before {
				t.Errorf("a refused change appended events: %d → %d", before, after)
			}
		})
	}

	_, _, env := s.bearer(t, "GET", "/1.0", "", nil)
	if got := serverOf(t, env).AuthMethods; strings.Join(got, ",") != "tls" {
		t.Errorf("auth_methods before OIDC = %v, want [tls]", got)
	}
	s.enableOIDC(t, p, map[string]string{"oidc.scopes": "openid,offline_access,email", "oidc.groups.claim": "groups"})
	_, _, env = s.bearer(t, "GET", "/1.0", "", nil)
	if got := serverOf(t, env).AuthMethods; strings.Join(got, ",") != "tls,oidc" {
		t.Errorf("auth_methods with OIDC = %v, want [tls oidc]", got)
	}
	// An empty bearer token is an OIDC attempt: 401 with both header families.
	code, h, env := s.bearer(t, "GET", "/1.0", "Bearer ", nil)
	if code != http.StatusUnauthorized || env.ErrorCode != http.StatusUnauthorized {
		t.Fatalf("empty bearer: %d %+v, want 401", code, env)
	}
	want := map[string]string{
		"X-Incus-OIDC-issuer": p.Issuer, "X-Incus-OIDC-clientid": "device", "X-Incus-OIDC-audience": "",
		"X-Incus-OIDC-scopes": "openid,offline_access,email",
		"X-LXD-OIDC-issuer":   p.Issuer, "X-LXD-OIDC-clientid": "device", "X-LXD-OIDC-groups-claim": "groups",
		"X-LXD-OIDC-scopes": `["openid","offline_access","email"]`,
	}
	for k, v := range want {
		if got, ok := h[http.CanonicalHeaderKey(k)]; !ok || got[0] != v {
			t.Errorf("header %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
}

// TestOIDCAccessTokens follows a user of the real provider: the token
// authenticates, the first request records the identity with no access,
// a grant opens the API, and every kind of bad token is refused with 401
// and the OIDC headers, appending nothing and logging no token text.
func TestOIDCAccessTokens(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, oidctest.Options{})
	other := oidctest.Start(t, oidctest.Options{})
	clk := &clock{now: time.Now()}
	s := startClocked(t, clk)
	s.enableOIDC(t, p, nil)
	tok := deviceToken(t, p)
	auth := "Bearer " + tok.AccessToken
	s.secrets = append(s.secrets, tok.AccessToken, tok.RefreshToken)

	before := s.lastSeq(t)
	code, _, env := s.bearer(t, "GET", "/1.0", auth, nil)
	srv := serverOf(t, env)
	if code != http.StatusOK || srv.Auth != "trusted" || srv.AuthUserMethod != "oidc" || srv.AuthUserName != "unknown" {
		t.Fatalf("GET /1.0 with the access token: %d auth=%s method=%s name=%s", code, srv.Auth, srv.AuthUserMethod, srv.AuthUserName)
	}
	if after := s.lastSeq(t); after != before+1 {
		t.Fatalf("first request appended %d events, want 1 (the identity)", after-before)
	}
	// The same token again records nothing more.
	s.bearer(t, "GET", "/1.0", auth, nil)
	if after := s.lastSeq(t); after != before+1 {
		t.Fatalf("second request appended events: %d", after-before)
	}
	var ids []api.Identity
	_, env = s.call(t, "GET", "/1.0/auth/identities/oidc?recursion=1", nil)
	if err := json.Unmarshal(env.Metadata, &ids); err != nil || len(ids) != 1 {
		t.Fatalf("identities = %s (%v)", env.Metadata, err)
	}
	if ids[0].Name != "unknown" || ids[0].Access != events.AccessNone || ids[0].AccessSource != "default" || ids[0].Type != "OIDC client" || ids[0].Issuer != p.Issuer {
		t.Errorf("recorded identity = %+v", ids[0])
	}

	// No grant: nothing beyond GET /1.0 (and the caller's own view).
	if code, _, env := s.bearer(t, "GET", "/1.0/certificates", auth, nil); code != http.StatusForbidden || !strings.Contains(env.Error, "no access yet") {
		t.Errorf("ungranted GET /1.0/certificates = %d %q, want 403", code, env.Error)
	}
	code, _, env = s.bearer(t, "GET", "/1.0/auth/identities/current", auth, nil)
	var info api.IdentityInfo
	_ = json.Unmarshal(env.Metadata, &info)
	if code != http.StatusOK || info.Access != events.AccessNone || !info.Recorded || len(info.Explanation) == 0 {
		t.Errorf("current = %d %+v", code, info)
	}

	// A grant of admin opens the API; restricted limits it; none closes it.
	if code, env := s.call(t, "PUT", "/1.0/auth/identities/oidc/unknown", api.IdentityPut{Access: "admin"}); code != http.StatusOK {
		t.Fatalf("grant: %d %s", code, env.Error)
	}
	if code, _, env := s.bearer(t, "GET", "/1.0/certificates", auth, nil); code != http.StatusOK {
		t.Errorf("granted GET /1.0/certificates = %d %q", code, env.Error)
	}
	if code, _, _ := s.bearer(t, "PATCH", "/1.0", auth, api.ServerPut{Config: map[string]string{"user.granted": "yes"}}); code != http.StatusOK {
		t.Errorf("granted admin PATCH /1.0 = %d", code)
	}
	s.call(t, "PUT", "/1.0/auth/identities/oidc/unknown", api.IdentityPut{Access: "restricted", Projects: []string{"web"}})
	if code, _, _ := s.bearer(t, "PATCH", "/1.0", auth, api.ServerPut{Config: map[string]string{"user.granted": "no"}}); code != http.StatusForbidden {
		t.Errorf("restricted PATCH /1.0 = %d, want 403", code)
	}
	s.call(t, "PUT", "/1.0/auth/identities/oidc/unknown", api.IdentityPut{Access: "none"})
	if code, _, _ := s.bearer(t, "GET", "/1.0/certificates", auth, nil); code != http.StatusForbidden {
		t.Errorf("revoked GET /1.0/certificates = %d, want 403", code)
	}
	// Bad grants change nothing.
	for _, bad := range []api.IdentityPut{{Access: "root"}, {Access: "restricted"}, {Access: "admin", Projects: []string{"web"}}, {Access: "admin", Groups: []string{"g"}}} {
		before := s.lastSeq(t)
		if code, _ := s.call(t, "PUT", "/1.0/auth/identities/oidc/unknown", bad); code != http.StatusBadRequest {
			t.Errorf("grant %+v = %d, want 400", bad, code)
		}
		if s.lastSeq(t) != before {
			t.Errorf("bad grant %+v appended events", bad)
		}
	}

	// Every bad token: 401 with the OIDC headers, nothing appended.
	parts := strings.Split(tok.AccessToken, ".")
	enc := base64.RawURLEncoding
	var claims map[string]any
	raw, _ := enc.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &claims)
	claims["sub"] = "admin"
	forged, _ := json.Marshal(claims)
	none := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	hsInput := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1]
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(hsInput))
	hs := hsInput + "." + enc.EncodeToString(mac.Sum(nil))
	foreign := deviceToken(t, other).AccessToken

	bad := []struct {
		name string
		auth string
		prep func()
		undo func()
	}{
		{name: "fail/empty", auth: "Bearer "},
		{name: "fail/garbage", auth: "Bearer not-a-token"},
		{name: "fail/tampered claims", auth: "Bearer " + parts[0] + "." + enc.EncodeToString(forged) + "." + parts[2]},
		{name: "fail/alg none", auth: "Bearer " + none},
		{name: "fail/HMAC signed", auth: "Bearer " + hs},
		{name: "fail/wrong issuer", auth: "Bearer " + foreign},
		{name: "fail/basic scheme", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("user:pass"))},
		{name: "fail/expired", auth: auth, prep: func() { clk.Add(10 * time.Minute) }, undo: func() { clk.Add(-10 * time.Minute) }},
		{name: "fail/not yet valid", auth: auth, prep: func() { clk.Add(-time.Hour) }, undo: func() { clk.Add(time.Hour) }},
		{
			name: "fail/wrong audience", auth: auth,
			prep: func() { s.configure(t, map[string]string{"oidc.audience": "https://api.example.com"}) },
			undo: func() { s.configure(t, map[string]string{"oidc.audience": ""}) },
		},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prep != nil {
				tt.prep()
				defer tt.undo()
			}
			before := s.lastSeq(t)
			code, h, env := s.bearer(t, "GET", "/1.0/certificates", tt.auth, nil)
			if code != http.StatusUnauthorized || h.Get("X-Incus-OIDC-issuer") != p.Issuer || h.Get("X-LXD-OIDC-clientid") != "device" {
				t.Errorf("GET = %d %q, issuer header %q; want 401 with the OIDC headers", code, env.Error, h.Get("X-Incus-OIDC-issuer"))
			}
			if after := s.lastSeq(t); after != before {
				t.Errorf("a refused token appended %d events", after-before)
			}
			// RFC 6750's hint: expired (refresh) is told apart from invalid.
			www := h.Get("WWW-Authenticate")
			expired := tt.name == "fail/expired"
			if !strings.Contains(www, `error="invalid_token"`) || strings.Contains(www, "expired") != expired || strings.Contains(env.Error, "expired") != expired {
				t.Errorf("WWW-Authenticate %q, error %q (expired: %v)", www, env.Error, expired)
			}
		})
	}
	// The valid token still works once the clock and audience are back.
	if code, _, env := s.bearer(t, "GET", "/1.0", auth, nil); code != http.StatusOK || serverOf(t, env).Auth != "trusted" {
		t.Errorf("valid token after the bad ones = %d", code)
	}
	logs := s.log.String()
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken, parts[2], foreign} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Error("token text appears in the daemon log")
		}
	}
	// With OIDC off, a bad bearer token is simply untrusted: 403, no headers.
	s.configure(t, map[string]string{"oidc.issuer": "", "oidc.client.id": ""})
	code, h, _ := s.bearer(t, "GET", "/1.0/certificates", "Bearer not-a-token", nil)
	if code != http.StatusForbidden || h.Get("X-Incus-OIDC-issuer") != "" {
		t.Errorf("bad bearer with OIDC off = %d (issuer header %q), want 403 without headers", code, h.Get("X-Incus-OIDC-issuer"))
	}
}

// TestOIDCDefaultAccessAdmin is Incus's behaviour, opted into: every OIDC
// user is an admin until an administrator grants otherwise.
func TestOIDCDefaultAccessAdmin(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, oidctest.Options{})
	p.SetUser(t, "test-user")
	s := start(t)
	s.enableOIDC(t, p, map[string]string{"oidc.default_access": "admin"})
	auth := "Bearer " + deviceToken(t, p).AccessToken
	code, _, env := s.bearer(t, "GET", "/1.0", auth, nil)
	if srv := serverOf(t, env); code != http.StatusOK || srv.AuthUserName != "test-user" {
		t.Fatalf("GET /1.0 = %d name %q", code, srv.AuthUserName)
	}
	if code, _, env := s.bearer(t, "GET", "/1.0/certificates", auth, nil); code != http.StatusOK {
		t.Errorf("default admin GET /1.0/certificates = %d %q", code, env.Error)
	}
	s.call(t, "PUT", "/1.0/auth/identities/oidc/test-user", api.IdentityPut{Access: "none"})
	if code, _, _ := s.bearer(t, "GET", "/1.0/certificates", auth, nil); code != http.StatusForbidden {
		t.Errorf("explicit none under default admin = %d, want 403", code)
	}
}

// TestIncusClientOIDC is the OIDC interoperability check with the stock
// incus client: `remote add --auth-type oidc` runs the device flow against
// the real provider (BROWSER=curl approves it), the user is trusted, and a
// grant gives access. Then a JWT made by `incus remote get-client-token`
// from a trusted client certificate authenticates over HTTPS alone.
func TestIncusClientOIDC(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, oidctest.Options{})
	s := start(t)
	s.enableOIDC(t, p, nil)

	cli := newIncus(t)
	cli.env = append(cli.env, "BROWSER=curl")
	cli.must(t, "remote", "add", "o", "https://"+s.d.HTTPSAddr(), "--accept-certificate", "--auth-type", "oidc")
	var srv api.Server
	if err := json.Unmarshal([]byte(cli.must(t, "query", "o:/1.0")), &srv); err != nil {
		t.Fatal(err)
	}
	if srv.Auth != "trusted" || srv.AuthUserMethod != "oidc" || srv.AuthUserName != "unknown" {
		t.Fatalf("incus query o:/1.0 = auth %q method %q name %q", srv.Auth, srv.AuthUserMethod, srv.AuthUserName)
	}
	if out, err := cli.run(t, "config", "trust", "list", "o:"); err == nil {
		t.Errorf("ungranted user listed the trust store:\n%s", out)
	}
	s.call(t, "PUT", "/1.0/auth/identities/oidc/unknown", api.IdentityPut{Access: "admin"})
	cli.must(t, "config", "trust", "list", "o:")

	// A second user: the provider now approves as test-user.
	p.SetUser(t, "test-user")
	second := newIncus(t)
	second.env = append(second.env, "BROWSER=curl")
	second.must(t, "remote", "add", "o", "https://"+s.d.HTTPSAddr(), "--accept-certificate", "--auth-type", "oidc")
	if out := second.must(t, "info", "o:"); !strings.Contains(out, "auth_user_name: test-user") {
		t.Errorf("incus info o: for the second user:\n%s", out)
	}

	// JWT from a client certificate (Incus's tls2jwt).
	jwtUser := newIncus(t)
	_, cert := newCert(t, jwtUser.conf, "client")
	s.trust(t, cert, "jwt-user")
	tok := strings.TrimSpace(jwtUser.must(t, "remote", "get-client-token", "1h"))
	code, _, env := s.bearer(t, "GET", "/1.0", "Bearer "+tok, nil)
	if srv := serverOf(t, env); code != http.StatusOK || srv.Auth != "trusted" || srv.AuthUserMethod != "tls" || srv.AuthUserName != fingerprintOf(cert) {
		t.Errorf("GET /1.0 with the incus JWT = %d auth %q method %q name %q", code, srv.Auth, srv.AuthUserMethod, srv.AuthUserName)
	}
	if code, _, env := s.bearer(t, "GET", "/1.0/certificates?access_token="+tok, "", nil); code != http.StatusOK {
		t.Errorf("?access_token= with the incus JWT = %d %q", code, env.Error)
	}
}

// TestOIDCPreProvisioned: an administrator creates an OIDC identity by
// user name before the user ever logs in; the first login replaces it with
// the recorded identity and its grant applies from the first request.
func TestOIDCPreProvisioned(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, oidctest.Options{})
	p.SetUser(t, "carol")
	s := start(t)
	s.enableOIDC(t, p, nil)
	conf := t.TempDir()
	trustlogCLI(t, s, conf, "auth", "identity", "create", "oidc/carol", "--access", "admin")
	if list := trustlogCLI(t, s, conf, "auth", "identity", "list", "--format", "csv"); !strings.Contains(list, "oidc,carol,") || !strings.Contains(list, "OIDC client (pending)") {
		t.Fatalf("identity list before login:\n%s", list)
	}
	if code, env := s.call(t, "POST", "/1.0/auth/identities/oidc", api.IdentitiesTLSPost{Name: "carol"}); code != http.StatusConflict {
		t.Errorf("second pre-provisioned carol = %d %q, want 409", code, env.Error)
	}
	auth := "Bearer " + deviceToken(t, p).AccessToken
	if code, _, env := s.bearer(t, "GET", "/1.0/certificates", auth, nil); code != http.StatusOK {
		t.Fatalf("first request of a pre-provisioned admin = %d %q", code, env.Error)
	}
	var ids []api.Identity
	_, env := s.call(t, "GET", "/1.0/auth/identities/oidc?recursion=1", nil)
	_ = json.Unmarshal(env.Metadata, &ids)
	if len(ids) != 1 || ids[0].Type != "OIDC client" || ids[0].Subject != "carol" || ids[0].Access != "admin" || ids[0].AccessSource != "grant" {
		t.Errorf("identities after login = %+v", ids)
	}
}
