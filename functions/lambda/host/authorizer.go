package host

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/gate"
)

// Decision is what the authorizer decided about one request.
type Decision struct {
	Allow bool
	// Context is passed to the backend (requestContext.authorizer):
	// identity name, fingerprint, method, certificate type, restricted and
	// projects.
	Context map[string]any
}

// Authorize decides a request the authorizer sees, with the same authn as
// the functions (the client certificate from the gateway, or a bearer
// token) and the same admission rule as the gate (gate.Decide), under the
// policy of the route the request names: a Trustlog route's own (a metrics
// certificate is allowed on GET /1.0/metrics only, a restricted caller on
// no admin-only route), and for any other path the front door's (trusted
// callers with some access). Only an authenticated caller is ever
// allowed: the untrusted view some routes give is not a pass to an API
// behind the authorizer. Unknown, removed, revoked, expired and ungranted
// callers are denied, and every caller once the read model has found the
// event log broken (gate.Broken). No value of the context is empty (NoValue stands
// for one), and "restricted" is true for every caller without full access.
func (h *Host) Authorize(ctx context.Context, method, path string, header http.Header, query url.Values, certPEM string) Decision {
	if err := h.catchUp(ctx); err != nil {
		return Decision{}
	}
	if gate.Broken(h.proj.Snapshot()) != nil {
		return Decision{} // the projector has logged the break
	}
	r, err := http.NewRequestWithContext(ctx, method, "https://gateway"+path, nil)
	if err != nil {
		return Decision{}
	}
	r.URL.RawQuery = query.Encode()
	r.Header = header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.TLS = tlsState
	if certPEM != "" {
		chain, err := parseChain(certPEM)
		if err != nil {
			return Decision{}
		}
		r = r.WithContext(authn.WithPeerCertificates(r.Context(), chain))
	}
	found := h.auth.Authenticate(r)
	id, err := gate.Decide(&found, h.svc.Policy(r), r)
	if err != nil || !id.Trusted {
		return Decision{}
	}
	return Decision{Allow: true, Context: map[string]any{
		"name":        orNone(id.Name),
		"fingerprint": orNone(id.Fingerprint),
		"method":      orNone(id.Method),
		"type":        orNone(id.Type),
		"restricted":  !id.Admin(),
		"projects":    orNone(strings.Join(id.Projects, ",")),
	}}
}

// AuthorizeREST is the REQUEST authorizer of an API Gateway REST API: an
// IAM policy allowing or denying execute-api:Invoke on the method.
func (h *Host) AuthorizeREST(ctx context.Context, ev events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	header := http.Header{}
	for k, v := range ev.Headers {
		header.Set(k, v)
	}
	for k, vs := range ev.MultiValueHeaders {
		header.Del(k)
		for _, v := range vs {
			header.Add(k, v)
		}
	}
	query := url.Values{}
	for k, v := range ev.QueryStringParameters {
		query.Set(k, v)
	}
	d := h.Authorize(ctx, ev.HTTPMethod, ev.Path, header, query, ev.RequestContext.Identity.ClientCert.ClientCertPem)
	effect, principal := "Deny", "untrusted"
	if d.Allow {
		effect, principal = "Allow", d.Context["name"].(string)
	}
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: principal,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: "2012-10-17",
			Statement: []events.IAMPolicyStatement{{
				Action: []string{"execute-api:Invoke"}, Effect: effect, Resource: []string{ev.MethodArn},
			}},
		},
		Context: d.Context,
	}, nil
}

// AuthorizeHTTP is the Lambda authorizer of an API Gateway HTTP API
// (payload 2.0, simple responses).
func (h *Host) AuthorizeHTTP(ctx context.Context, ev events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	header := http.Header{}
	for k, v := range ev.Headers {
		header.Set(k, v)
	}
	query := url.Values{}
	for k, v := range ev.QueryStringParameters {
		query.Set(k, v)
	}
	method := ev.RequestContext.HTTP.Method
	d := h.Authorize(ctx, method, ev.RawPath, header, query, ev.RequestContext.Authentication.ClientCert.ClientCertPem)
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: d.Allow, Context: d.Context}, nil
}

// MainAuthorizer is the main of the authorizer function: TRUSTLOG_GATEWAY
// "rest" answers REST REQUEST authorizer events, "http" HTTP API ones. A
// start failure denies (never allows) and is retried on the next event.
func MainAuthorizer() {
	cfg, err := ConfigFromEnv(envGetter)
	if err != nil {
		lambda.Start(func(context.Context) error { return err })
		return
	}
	l := &Lazy{cfg: cfg}
	if cfg.Logger == nil {
		l.cfg.Logger = slog.Default()
	}
	switch cfg.Gateway {
	case GatewayHTTP:
		lambda.Start(func(ctx context.Context, ev events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
			h, err := l.host(ctx)
			if err != nil {
				return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, nil
			}
			return h.AuthorizeHTTP(ctx, ev)
		})
	default:
		lambda.Start(func(ctx context.Context, ev events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
			h, err := l.host(ctx)
			if err != nil {
				return events.APIGatewayCustomAuthorizerResponse{PrincipalID: "untrusted", PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
					Version:   "2012-10-17",
					Statement: []events.IAMPolicyStatement{{Action: []string{"execute-api:Invoke"}, Effect: "Deny", Resource: []string{ev.MethodArn}}},
				}}, nil
			}
			return h.AuthorizeREST(ctx, ev)
		})
	}
}

// NoValue stands for an empty value in the authorizer's context (no
// certificate fingerprint for a bearer token's user, no projects): the
// gateway copies each value over a header of the backend's request, and
// an empty value must not leave a client's copy of that header in place.
const NoValue = "-"

func orNone(v string) string {
	if v == "" {
		return NoValue
	}
	return v
}
