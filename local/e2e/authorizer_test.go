package e2e_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/trustlog/trustlog/cli/command"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/lambda/host"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// issueFor signs a client certificate valid from nb to na with ca.
func (ca *testCA) issueFor(t *testing.T, cn string, serial int64, nb, na time.Time) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: nb, NotAfter: na, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: c}, c
}

// modelFunc is an authn.ReadModel.
type modelFunc func() *projections.Model

func (f modelFunc) Snapshot() *projections.Model { return f() }

// authzCaller is one identity of the authorizer table: how it presents
// itself.
type authzCallerCreds struct {
	cert   *tls.Certificate
	bearer string
}

// TestAuthorizerMatchesGate runs the same identities against the same
// routes through the local gate (trustlogd's routes behind gate.New, with
// recording handlers) and through the Lambda authorizer (REST and HTTP
// API), and checks both against one table: a caller is allowed exactly
// where the gate admits it with an authenticated identity. The gate's
// side is a real gate over the daemon's real route table; the authorizer's
// is a real Lambda host on the same stream.
func TestAuthorizerMatchesGate(t *testing.T) {
	t.Parallel()
	st := startLambdaStack(t, nil)
	now := time.Now()
	clk := &clock{now: now}

	// PKI mode: every client certificate is signed by this CA; one of them
	// is revoked by its CRL.
	ca := newCA(t)
	st.admin.call(t, "PUT", "/1.0/trustlog/pki/ca", pki.CAPut{Certificate: ca.pem()})
	year := now.Add(300 * 24 * time.Hour)
	adminPair, admin := ca.issueFor(t, "admin", 11, now.Add(-time.Hour), year)
	restrictedPair, restricted := ca.issueFor(t, "restricted", 12, now.Add(-time.Hour), year)
	metricsPair, metrics := ca.issueFor(t, "metrics", 13, now.Add(-time.Hour), year)
	strangerPair, _ := ca.issueFor(t, "stranger", 14, now.Add(-time.Hour), year)
	removedPair, removed := ca.issueFor(t, "removed", 15, now.Add(-time.Hour), year)
	expiredPair, expired := ca.issueFor(t, "expired", 16, now.Add(-time.Hour), now.Add(time.Hour))
	revokedPair, revoked := ca.issueFor(t, "revoked", 17, now.Add(-time.Hour), year)
	ungrantedPair, _ := ca.issueFor(t, "ungranted", 18, now.Add(-time.Hour), year)
	add := func(c *x509.Certificate, post api.CertificatesPost) {
		post.Certificate = base64.StdEncoding.EncodeToString(c.Raw)
		if code, env := st.admin.call(t, "POST", "/1.0/certificates", post); code != http.StatusCreated {
			t.Fatalf("trust %s: %d %s", post.Name, code, env.Error)
		}
	}
	add(admin, api.CertificatesPost{Name: "admin"})
	add(restricted, api.CertificatesPost{Name: "restricted", Restricted: true, Projects: []string{"web"}})
	add(metrics, api.CertificatesPost{Name: "metrics", Type: "metrics"})
	add(removed, api.CertificatesPost{Name: "removed"})
	add(expired, api.CertificatesPost{Name: "expired"})
	add(revoked, api.CertificatesPost{Name: "revoked"})
	st.admin.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(removed), nil)
	if code, env := st.admin.call(t, "PUT", "/1.0/trustlog/pki/crl", pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(ca.crlOf(t, 17))}); code != 200 {
		t.Fatalf("CRL: %d %s", code, env.Error)
	}
	// A TLS identity nobody granted anything: trusted, no access.
	code, env := st.admin.call(t, "POST", "/1.0/auth/identities/tls", api.IdentitiesTLSPost{Name: "ungranted", Token: true})
	var tok api.CertificateAddToken
	if code != http.StatusCreated || json.Unmarshal(env.Metadata, &tok) != nil {
		t.Fatalf("pending identity: %d %s", code, env.Error)
	}
	st.admin.secrets = append(st.admin.secrets, tok.Secret)
	if code, env := do(t, tlsClient(&ungrantedPair), "POST", "https://"+st.local.HTTPSAddr()+"/1.0/auth/identities/tls", api.IdentitiesTLSPost{TrustToken: tok.Encode()}); code != http.StatusCreated {
		t.Fatalf("redeem identity token: %d %s", code, env.Error)
	}

	// Two hours on: the expired certificate is past its notAfter.
	clk.Add(2 * time.Hour)
	jwt, err := command.ClientJWT(adminPair.PrivateKey.(crypto.Signer), fingerprintOf(admin), clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	strangerJWT, err := command.ClientJWT(strangerPair.PrivateKey.(crypto.Signer), fingerprintOf(admin), clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	callers := map[string]authzCallerCreds{
		"admin":      {cert: &adminPair},
		"admin-jwt":  {bearer: jwt},
		"restricted": {cert: &restrictedPair},
		"metrics":    {cert: &metricsPair},
		"ungranted":  {cert: &ungrantedPair},
		"stranger":   {cert: &strangerPair},
		"forged-jwt": {bearer: strangerJWT},
		"none":       {},
		"removed":    {cert: &removedPair},
		"expired":    {cert: &expiredPair},
		"revoked":    {cert: &revokedPair},
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	authz, err := host.Start(ctx, host.Config{NATSURL: st.url, Gateway: host.GatewayHTTP, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(authz.Close)

	// The local side: trustlogd's route table behind a real gate on the
	// same clock and stream, each route answering whom it was handed.
	type seen struct {
		ran     bool
		trusted bool
	}
	var last seen
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last = seen{ran: true, trusted: authn.FromContext(r.Context()).Trusted}
		response.EmptySync(w)
	})
	var routes []gate.Route
	for _, rt := range st.local.Service().Routes() {
		rt.Handler = record
		routes = append(routes, rt)
	}
	local := gate.New(gate.Config{Authenticator: authn.New(modelFunc(authz.Model), clk.Now), Now: clk.Now,
		Logger: slog.New(slog.DiscardHandler), Fallback: record}, routes...)
	gateAllows := func(method, path string, creds authzCallerCreds) bool {
		r := httptest.NewRequest(method, "https://trustlog"+path, nil)
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
		if creds.cert != nil {
			r.TLS.PeerCertificates = []*x509.Certificate{creds.cert.Leaf}
		}
		if creds.bearer != "" {
			r.Header.Set("Authorization", "Bearer "+creds.bearer)
		}
		last = seen{}
		local.ServeHTTP(httptest.NewRecorder(), r)
		return last.ran && last.trusted
	}
	const arn = "arn:aws:execute-api:eu-west-1:123456789012:abc/prod/ANY/x"
	authorizerAllows := func(t *testing.T, method, path string, creds authzCallerCreds) bool {
		var pemText string
		if creds.cert != nil {
			pemText = certPEMOf(creds.cert)
		}
		headers := map[string]string{}
		if creds.bearer != "" {
			headers["authorization"] = "Bearer " + creds.bearer
		}
		httpEv := events.APIGatewayV2CustomAuthorizerV2Request{Version: "2.0", Type: "REQUEST", RawPath: path, Headers: headers}
		httpEv.RequestContext.HTTP.Method = method
		httpEv.RequestContext.Authentication.ClientCert.ClientCertPem = pemText
		h, err := authz.AuthorizeHTTP(ctx, httpEv)
		if err != nil {
			t.Fatal(err)
		}
		restEv := events.APIGatewayCustomAuthorizerRequestTypeRequest{Type: "REQUEST", MethodArn: arn, HTTPMethod: method, Path: path, Headers: headers}
		restEv.RequestContext.Identity.ClientCert.ClientCertPem = pemText
		rest, err := authz.AuthorizeREST(ctx, restEv)
		if err != nil {
			t.Fatal(err)
		}
		restAllow := len(rest.PolicyDocument.Statement) == 1 && rest.PolicyDocument.Statement[0].Effect == "Allow"
		if restAllow != h.IsAuthorized {
			t.Errorf("REST authorizer %v, HTTP API authorizer %v", restAllow, h.IsAuthorized)
		}
		if h.IsAuthorized {
			if typ, ok := h.Context["type"].(string); !ok || (creds.cert != nil && typ == "") {
				t.Errorf("context without the certificate type: %v", h.Context)
			}
		}
		return h.IsAuthorized
	}

	// Who is allowed on each route; everyone else is denied.
	allowed := map[string][]string{
		"GET /1.0":                          {"admin", "admin-jwt", "restricted", "ungranted"},
		"GET /1.0/metrics":                  {"admin", "admin-jwt", "restricted", "metrics"},
		"GET /1.0/certificates":             {"admin", "admin-jwt", "restricted"},
		"PUT /1.0":                          {"admin", "admin-jwt"},
		"PUT /1.0/trustlog/pki/crl":         {"admin", "admin-jwt"},
		"DELETE /1.0/operations/x":          {"admin", "admin-jwt"},
		"GET /1.0/auth/identities/current":  {"admin", "admin-jwt", "restricted", "ungranted"},
		"POST /1.0/certificates":            {"admin", "admin-jwt", "restricted"},
		"GET /app/orders":                   {"admin", "admin-jwt", "restricted"},
		"POST /app/orders":                  {"admin", "admin-jwt", "restricted"},
		"DELETE /1.0/trustlog/not-a-route/": {"admin", "admin-jwt", "restricted"},
	}
	names := make([]string, 0, len(callers))
	for name := range callers {
		names = append(names, name)
	}
	sort.Strings(names)
	for route, who := range allowed {
		method, path, _ := strings.Cut(route, " ")
		for _, name := range names {
			want := false
			for _, w := range who {
				want = want || w == name
			}
			kind := "fail"
			if want {
				kind = "ok"
			}
			t.Run(kind+"/"+route+"/"+name, func(t *testing.T) {
				g := gateAllows(method, path, callers[name])
				a := authorizerAllows(t, method, path, callers[name])
				if g != a || a != want {
					t.Errorf("gate %v, authorizer %v, want %v", g, a, want)
				}
			})
		}
	}

	// The context tells a backend which kind of certificate called.
	ev := events.APIGatewayV2CustomAuthorizerV2Request{Version: "2.0", Type: "REQUEST", RawPath: "/1.0/metrics"}
	ev.RequestContext.HTTP.Method = "GET"
	ev.RequestContext.Authentication.ClientCert.ClientCertPem = certPEMOf(&metricsPair)
	if r, err := authz.AuthorizeHTTP(ctx, ev); err != nil || !r.IsAuthorized || r.Context["type"] != "metrics" || r.Context["restricted"] != true {
		t.Errorf("metrics certificate on the metrics route: %+v %v", r, err)
	}
	ev.RequestContext.Authentication.ClientCert.ClientCertPem = certPEMOf(&adminPair)
	if r, err := authz.AuthorizeHTTP(ctx, ev); err != nil || r.Context["type"] != "client" || r.Context["restricted"] != false || r.Context["projects"] != host.NoValue {
		t.Errorf("admin on the metrics route: %+v %v", r, err)
	}
}
