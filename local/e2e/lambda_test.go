package e2e_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/trustlog/trustlog/cli/command"
	tlevents "github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/lambda/host"
	"github.com/trustlog/trustlog/local/daemon"
)

// lambdaReq is one request, sent either to trustlogd over real TLS or to a
// Lambda host as a gateway event.
type lambdaReq struct {
	method, path, query string
	body                any
	header              map[string]string
	cert                *tls.Certificate // the client certificate, if any
}

// lambdaResp is what the comparison looks at.
type lambdaResp struct {
	Status int
	Auth   string
	Method string
	Name   string
	Error  string
}

func decodeResp(t testing.TB, status int, body []byte) lambdaResp {
	t.Helper()
	var env api.Response
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("decode %d %q: %v", status, body, err)
	}
	out := lambdaResp{Status: status, Error: env.Error}
	var srv api.Server
	if json.Unmarshal(env.Metadata, &srv) == nil {
		out.Auth, out.Method, out.Name = srv.Auth, srv.AuthUserMethod, srv.AuthUserName
	}
	return out
}

// albEscape encodes a PEM as an ALB in passthrough mode does: URL-encoded,
// with '+', '=' and '/' left as they are.
func albEscape(pemText string) string {
	var b strings.Builder
	for _, c := range []byte(pemText) {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', strings.IndexByte("+=/-_.~", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func certPEMOf(c *tls.Certificate) string {
	if c == nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
}

// invokeLambda sends req to h as an event of the gateway mode, through the
// adapter that lambda.Start would call, and decodes the reply.
func invokeLambda(t testing.TB, mode string, h http.Handler, req lambdaReq) lambdaResp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body string
	if req.body != nil {
		raw, _ := json.Marshal(req.body)
		body = string(raw)
	}
	headers := map[string]string{"Content-Type": "application/json"}
	for k, v := range req.header {
		headers[k] = v
	}
	query := map[string]string{}
	if q, err := url.ParseQuery(req.query); err == nil {
		for k := range q {
			query[k] = q.Get(k)
		}
	}
	pemText := certPEMOf(req.cert)
	switch mode {
	case host.GatewayREST:
		ev := events.APIGatewayProxyRequest{
			HTTPMethod: req.method, Path: req.path, Headers: headers, QueryStringParameters: query, Body: body,
			RequestContext: events.APIGatewayProxyRequestContext{
				DomainName: "api.example.com", Stage: "prod", HTTPMethod: req.method,
				Identity: events.APIGatewayRequestIdentity{SourceIP: "192.0.2.10"},
			},
		}
		if pemText != "" {
			ev.RequestContext.Identity.ClientCert = &events.APIGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert{ClientCertPem: pemText}
		}
		fn := host.LambdaHandler(mode, h).(func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error))
		resp, err := fn(ctx, ev)
		if err != nil {
			t.Fatalf("REST invoke: %v", err)
		}
		return decodeResp(t, resp.StatusCode, []byte(resp.Body))
	case host.GatewayHTTP:
		ev := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RawPath: req.path, RawQueryString: req.query, Headers: headers, QueryStringParameters: query, Body: body,
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				DomainName: "api.example.com",
				HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: req.method, Path: req.path, SourceIP: "192.0.2.10"},
			},
		}
		ev.RequestContext.Authentication.ClientCert.ClientCertPem = pemText
		fn := host.LambdaHandler(mode, h).(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error))
		resp, err := fn(ctx, ev)
		if err != nil {
			t.Fatalf("HTTP API invoke: %v", err)
		}
		return decodeResp(t, resp.StatusCode, []byte(resp.Body))
	default:
		headers["host"] = "lb.example.com"
		if pemText != "" {
			headers["x-amzn-mtls-clientcert"] = albEscape(pemText)
		}
		ev := events.ALBTargetGroupRequest{HTTPMethod: req.method, Path: req.path, Headers: headers, QueryStringParameters: query, Body: body}
		fn := host.LambdaHandler(mode, h).(func(context.Context, events.ALBTargetGroupRequest) (events.ALBTargetGroupResponse, error))
		resp, err := fn(ctx, ev)
		if err != nil {
			t.Fatalf("ALB invoke: %v", err)
		}
		return decodeResp(t, resp.StatusCode, []byte(resp.Body))
	}
}

// invokeLocal sends req to trustlogd over TLS.
func invokeLocal(t *testing.T, d *daemon.Daemon, req lambdaReq) lambdaResp {
	t.Helper()
	var rd io.Reader
	if req.body != nil {
		raw, _ := json.Marshal(req.body)
		rd = bytes.NewReader(raw)
	}
	u := "https://" + d.HTTPSAddr() + req.path
	if req.query != "" {
		u += "?" + req.query
	}
	r, _ := http.NewRequest(req.method, u, rd)
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	resp, err := tlsClient(req.cert).Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return decodeResp(t, resp.StatusCode, raw)
}

// lambdaStack is trustlogd and one Lambda host per gateway mode, sharing
// one JetStream server.
type lambdaStack struct {
	local *daemon.Daemon
	admin *server
	hosts map[string]*host.Host
	url   string
}

func startLambdaStack(t *testing.T, sealingKey []byte) *lambdaStack {
	t.Helper()
	ns := natstest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logBuf bytes.Buffer
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	st := &lambdaStack{local: d, admin: newServer(t, d, &logBuf), hosts: map[string]*host.Host{}, url: ns.ClientURL()}
	for _, mode := range []string{host.GatewayREST, host.GatewayHTTP, host.GatewayALB} {
		h, err := host.Start(ctx, host.Config{NATSURL: ns.ClientURL(), Gateway: mode, SealingKey: sealingKey,
			ServerName: "lambda-" + mode, Addresses: []string{"api.example.com:443"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("start %s host: %v", mode, err)
		}
		t.Cleanup(h.Close)
		st.hosts[mode] = h
	}
	return st
}

// TestLambdaHostsMatchLocal is the both-hosts table: the same requests,
// with the client certificate where each gateway puts it, get the same
// answers from trustlogd and from the Lambda host in every gateway mode.
func TestLambdaHostsMatchLocal(t *testing.T) {
	t.Parallel()
	st := startLambdaStack(t, make([]byte, 32))
	trustedPair, trusted := newCert(t, "", "trusted")
	st.admin.trust(t, trusted, "trusted")
	restrictedPair, restricted := newCert(t, "", "restricted")
	st.admin.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "restricted", Restricted: true, Projects: []string{"web"},
		Certificate: base64.StdEncoding.EncodeToString(restricted.Raw)})
	strangerPair, _ := newCert(t, "", "stranger")
	jwt, err := command.ClientJWT(trustedPair.PrivateKey.(crypto.Signer), fingerprintOf(trusted), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprintOf(trusted)
	tests := []struct {
		name string
		req  lambdaReq
		want lambdaResp
	}{
		{name: "ok/GET /1.0 untrusted", req: lambdaReq{method: "GET", path: "/1.0"}, want: lambdaResp{Status: 200, Auth: "untrusted"}},
		{name: "ok/GET /1.0 trusted certificate", req: lambdaReq{method: "GET", path: "/1.0", cert: &trustedPair}, want: lambdaResp{Status: 200, Auth: "trusted", Method: "tls", Name: fp}},
		{name: "ok/GET /1.0 unknown certificate", req: lambdaReq{method: "GET", path: "/1.0", cert: &strangerPair}, want: lambdaResp{Status: 200, Auth: "untrusted"}},
		{name: "ok/certificates trusted", req: lambdaReq{method: "GET", path: "/1.0/certificates", cert: &trustedPair}, want: lambdaResp{Status: 200}},
		{name: "ok/certificates by JWT in the query", req: lambdaReq{method: "GET", path: "/1.0/certificates", query: "access_token=" + jwt}, want: lambdaResp{Status: 200}},
		{name: "ok/certificates by JWT header", req: lambdaReq{method: "GET", path: "/1.0/certificates", header: map[string]string{"Authorization": "Bearer " + jwt}}, want: lambdaResp{Status: 200}},
		{name: "fail/certificates without certificate", req: lambdaReq{method: "GET", path: "/1.0/certificates"}, want: lambdaResp{Status: 403, Error: "not authorized"}},
		{name: "fail/certificates unknown certificate", req: lambdaReq{method: "GET", path: "/1.0/certificates", cert: &strangerPair}, want: lambdaResp{Status: 403, Error: "not authorized"}},
		{name: "fail/restricted PATCH /1.0", req: lambdaReq{method: "PATCH", path: "/1.0", cert: &restrictedPair, body: api.ServerPut{Config: map[string]string{"user.x": "1"}}}, want: lambdaResp{Status: 403, Error: "Certificate is restricted"}},
		{name: "fail/unknown route", req: lambdaReq{method: "GET", path: "/1.0/nope", cert: &trustedPair}, want: lambdaResp{Status: 404, Error: "not found"}},
		{name: "fail/bad JSON", req: lambdaReq{method: "PATCH", path: "/1.0", cert: &trustedPair, body: "not an object"}, want: lambdaResp{Status: 400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := invokeLocal(t, st.local, tt.req)
			if tt.want.Error == "" && local.Status >= 400 {
				tt.want.Error = local.Error // compare the text, whatever it is
			}
			if local != tt.want {
				t.Errorf("trustlogd: %+v, want %+v", local, tt.want)
			}
			for mode, h := range st.hosts {
				if got := invokeLambda(t, mode, h, tt.req); got != local {
					t.Errorf("%s Lambda: %+v, trustlogd: %+v", mode, got, local)
				}
			}
		})
	}
	// A write through one Lambda is seen by the next request anywhere.
	for mode, h := range st.hosts {
		key := "user.written_by_" + mode
		if got := invokeLambda(t, mode, h, lambdaReq{method: "PATCH", path: "/1.0", cert: &trustedPair, body: api.ServerPut{Config: map[string]string{key: "yes"}}}); got.Status != 200 {
			t.Fatalf("%s PATCH: %+v", mode, got)
		}
		// Another instance sees it once its projection has caught up.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := st.local.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, env := st.admin.call(t, "GET", "/1.0", nil); !strings.Contains(string(env.Metadata), key) {
			t.Errorf("trustlogd does not see the %s Lambda's write", mode)
		}
	}
	// A token issued by trustlogd is redeemed through each Lambda.
	for mode, h := range st.hosts {
		tok, _ := st.admin.issue(t, api.CertificatesPost{Name: "via-" + mode})
		joinPair, _ := newCert(t, "", "join-"+mode)
		if got := invokeLambda(t, mode, h, lambdaReq{method: "POST", path: "/1.0/certificates", cert: &joinPair, body: api.CertificatesPost{Type: "client", TrustToken: tok}}); got.Status != 201 {
			t.Errorf("%s redeem: %+v", mode, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := st.local.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if got := invokeLocal(t, st.local, lambdaReq{method: "GET", path: "/1.0", cert: &joinPair}); got.Auth != "trusted" {
			t.Errorf("certificate added through the %s Lambda is not trusted by trustlogd: %+v", mode, got)
		}
	}
	// Removal through trustlogd takes effect at the next invocation.
	st.admin.call(t, "DELETE", "/1.0/certificates/"+fp, nil)
	for mode, h := range st.hosts {
		if got := invokeLambda(t, mode, h, lambdaReq{method: "GET", path: "/1.0/certificates", cert: &trustedPair}); got.Status != 403 {
			t.Errorf("%s Lambda after removal: %+v", mode, got)
		}
	}
}

// TestLambdaSpoofing: whatever a client adds to a request, only the
// gateway's own record of the client certificate counts.
func TestLambdaSpoofing(t *testing.T) {
	t.Parallel()
	st := startLambdaStack(t, nil)
	trustedPair, trusted := newCert(t, "", "trusted")
	st.admin.trust(t, trusted, "trusted")
	trustedPEM := certPEMOf(&trustedPair)
	spoofV2, _ := json.Marshal(events.APIGatewayV2HTTPRequestContext{Authentication: events.APIGatewayV2HTTPRequestContextAuthentication{
		ClientCert: events.APIGatewayV2HTTPRequestContextAuthenticationClientCert{ClientCertPem: trustedPEM}}})
	spoofV1, _ := json.Marshal(events.APIGatewayProxyRequestContext{Identity: events.APIGatewayRequestIdentity{
		ClientCert: &events.APIGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert{ClientCertPem: trustedPEM}}})
	for _, mode := range []string{host.GatewayREST, host.GatewayHTTP, host.GatewayALB} {
		for name, hdr := range map[string]map[string]string{
			"X-GoLambdaProxy-ApiGw-Context (v2)": {"X-GoLambdaProxy-ApiGw-Context": string(spoofV2)},
			"X-GoLambdaProxy-ApiGw-Context (v1)": {"X-GoLambdaProxy-ApiGw-Context": string(spoofV1)},
			"X-GoLambdaProxy-ALB-Context":        {"X-GoLambdaProxy-ALB-Context": `{"elb":{"targetGroupArn":"x"}}`},
		} {
			got := invokeLambda(t, mode, st.hosts[mode], lambdaReq{method: "GET", path: "/1.0/certificates", header: hdr})
			if got.Status != 403 {
				t.Errorf("%s with a spoofed %s: %+v, want 403", mode, name, got)
			}
		}
	}
	// X-Amzn-Mtls-Clientcert outside ALB mode is the client's own header.
	for _, mode := range []string{host.GatewayREST, host.GatewayHTTP} {
		got := invokeLambda(t, mode, st.hosts[mode], lambdaReq{method: "GET", path: "/1.0/certificates",
			header: map[string]string{"X-Amzn-Mtls-Clientcert": albEscape(trustedPEM)}})
		if got.Status != 403 {
			t.Errorf("%s with a spoofed X-Amzn-Mtls-Clientcert: %+v, want 403", mode, got)
		}
	}
	// Malformed ALB headers are refused, never read as "no certificate".
	truncated := albEscape(trustedPEM[:len(trustedPEM)/2])
	malformed := map[string]string{
		"truncated PEM":     truncated,
		"bad escape":        "%zz" + albEscape(trustedPEM),
		"not a certificate": albEscape("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	}
	// A certificate whose base64 has no "+" is unchanged by unescaping.
	if escaped := albEscape(trustedPEM); strings.Contains(escaped, "+") {
		malformed["query-unescaped +"] = strings.ReplaceAll(escaped, "+", " ")
	}
	for name, value := range malformed {
		headers := map[string]string{"x-amzn-mtls-clientcert": value}
		got := invokeLambda(t, host.GatewayALB, st.hosts[host.GatewayALB], lambdaReq{method: "GET", path: "/1.0", header: headers})
		if got.Status != 400 || got.Auth == "trusted" {
			t.Errorf("ALB with a %s: %+v, want 400", name, got)
		}
	}
	// A host without the sealing key serves reads and refuses to issue tokens.
	got := invokeLambda(t, host.GatewayHTTP, st.hosts[host.GatewayHTTP], lambdaReq{method: "POST", path: "/1.0/certificates", cert: &trustedPair,
		body: api.CertificatesPost{Name: "x", Type: "client", Token: true}})
	if got.Status != 503 || !strings.Contains(got.Error, "no sealing key") {
		t.Errorf("token issue without a sealing key: %+v", got)
	}
	if got := invokeLambda(t, host.GatewayHTTP, st.hosts[host.GatewayHTTP], lambdaReq{method: "GET", path: "/1.0", cert: &trustedPair}); got.Auth != "trusted" {
		t.Errorf("read-only host GET /1.0: %+v", got)
	}
}

// TestLambdaColdStartWithoutNATS: an unreachable NATS at cold start is a
// 503 in the envelope, never an untrusted or trusted answer; the function
// recovers once NATS answers.
func TestLambdaColdStartWithoutNATS(t *testing.T) {
	t.Parallel()
	dead := "nats://" + freeAddr(t) // nothing listens there
	h := host.NewLazy(host.Config{NATSURL: dead, Gateway: host.GatewayHTTP, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	got := invokeLambda(t, host.GatewayHTTP, h, lambdaReq{method: "GET", path: "/1.0"})
	if got.Status != 503 || got.Auth != "" || !strings.Contains(got.Error, "cannot be reached") {
		t.Errorf("cold start without NATS: %+v", got)
	}
}

// TestLambdaAuthorizer: the REQUEST authorizer allows trusted certificates
// with their identity in the context, and denies the rest.
func TestLambdaAuthorizer(t *testing.T) {
	t.Parallel()
	st := startLambdaStack(t, nil)
	h := st.hosts[host.GatewayREST]
	trustedPair, trusted := newCert(t, "", "trusted")
	st.admin.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "ci", Restricted: true, Projects: []string{"web", "db"},
		Certificate: base64.StdEncoding.EncodeToString(trusted.Raw)})
	strangerPair, _ := newCert(t, "", "stranger")
	ctx := context.Background()
	arn := "arn:aws:execute-api:eu-west-1:123456789012:abc/prod/GET/1.0"
	rest := func(cert *tls.Certificate) events.APIGatewayCustomAuthorizerResponse {
		ev := events.APIGatewayCustomAuthorizerRequestTypeRequest{Type: "REQUEST", MethodArn: arn, HTTPMethod: "GET", Path: "/1.0/certificates"}
		ev.RequestContext.Identity.ClientCert.ClientCertPem = certPEMOf(cert)
		resp, err := h.AuthorizeREST(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	allow := rest(&trustedPair)
	if s := allow.PolicyDocument.Statement; len(s) != 1 || s[0].Effect != "Allow" || s[0].Resource[0] != arn || allow.PrincipalID != fingerprintOf(trusted) {
		t.Errorf("REST authorizer for a trusted certificate: %+v", allow)
	}
	if c := allow.Context; c["fingerprint"] != fingerprintOf(trusted) || c["method"] != "tls" || c["restricted"] != true || c["projects"] != "web,db" {
		t.Errorf("authorizer context: %+v", c)
	}
	for name, cert := range map[string]*tls.Certificate{"unknown": &strangerPair, "none": nil} {
		if deny := rest(cert); deny.PolicyDocument.Statement[0].Effect != "Deny" {
			t.Errorf("REST authorizer, %s certificate: %+v", name, deny)
		}
	}
	httpAuth := func(cert *tls.Certificate) events.APIGatewayV2CustomAuthorizerSimpleResponse {
		ev := events.APIGatewayV2CustomAuthorizerV2Request{Version: "2.0", Type: "REQUEST", RawPath: "/1.0/certificates"}
		ev.RequestContext.HTTP.Method = "GET"
		ev.RequestContext.Authentication.ClientCert.ClientCertPem = certPEMOf(cert)
		resp, err := st.hosts[host.GatewayHTTP].AuthorizeHTTP(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := httpAuth(&trustedPair); !r.IsAuthorized || r.Context["name"] != fingerprintOf(trusted) {
		t.Errorf("HTTP authorizer, trusted: %+v", r)
	}
	if r := httpAuth(&strangerPair); r.IsAuthorized {
		t.Errorf("HTTP authorizer, unknown: %+v", r)
	}
	// Revocation (removal) is seen by the next authorization.
	st.admin.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(trusted), nil)
	if r := httpAuth(&trustedPair); r.IsAuthorized {
		t.Errorf("HTTP authorizer after removal: %+v", r)
	}
}

// TestLambdaSnapshotColdStart: a host started after a snapshot was stored
// begins from it, and what happened after the snapshot still counts.
func TestLambdaSnapshotColdStart(t *testing.T) {
	t.Parallel()
	st := startLambdaStack(t, nil)
	pair, cert := newCert(t, "", "before")
	st.admin.trust(t, cert, "before")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if saved, err := st.hosts[host.GatewayHTTP].SaveSnapshot(ctx, 0); !saved || err != nil {
		t.Fatalf("save snapshot: %v %v", saved, err)
	}
	st.admin.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(cert), nil)
	var logBuf bytes.Buffer
	h, err := host.Start(ctx, host.Config{NATSURL: st.url, Gateway: host.GatewayHTTP, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if !strings.Contains(logBuf.String(), "read model restored from a snapshot") {
		t.Errorf("snapshot refused:\n%s", logBuf.String())
	}
	if got := invokeLambda(t, host.GatewayHTTP, h, lambdaReq{method: "GET", path: "/1.0", cert: &pair}); got.Auth != "untrusted" {
		t.Errorf("certificate removed after the snapshot: %+v", got)
	}
	// Not saved again when fewer than `every` events passed.
	if saved, err := h.SaveSnapshot(ctx, 1000); saved || err != nil {
		t.Errorf("SaveSnapshot(1000) right after one = %v, %v", saved, err)
	}
}

// TestLambdaDenials: a warm function records the refused attempts it
// counted at the end of an invocation once a minute has passed.
func TestLambdaDenials(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	clk := &clock{now: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := host.Start(ctx, host.Config{NATSURL: ns.ClientURL(), Gateway: host.GatewayHTTP, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	stranger, _ := newCert(t, "", "stranger")
	for range 5 {
		if got := invokeLambda(t, host.GatewayHTTP, h, lambdaReq{method: "PATCH", path: "/1.0", cert: &stranger, body: api.ServerPut{Config: map[string]string{"user.x": "1"}}}); got.Status != 403 {
			t.Fatalf("stranger PATCH: %+v", got)
		}
	}
	seq := h.Model().Seq()
	clk.Add(2 * time.Minute)
	invokeLambda(t, host.GatewayHTTP, h, lambdaReq{method: "GET", path: "/1.0"})
	st := natstest.OpenStoreOn(t, ns)
	last, _ := st.LastSeq(ctx)
	recs, _ := st.Read(ctx, seq+1, last)
	found := false
	for _, rec := range recs {
		env, _ := tlevents.Decode(rec.Raw)
		if p, err := env.Payload(); err == nil {
			if d, ok := p.(*tlevents.AccessDeniedSummary); ok && d.Count == 5 && len(d.Callers) == 1 && d.Callers[0].Kind == tlevents.DeniedAdmin {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no AccessDeniedSummary event with the 5 refused changes after the flush interval (%d new events)", len(recs))
	}
}
