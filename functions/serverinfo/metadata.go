package serverinfo

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/trustlog/trustlog/functions/acme"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/oidc"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/functions/tokens"
)

// metadataExtension is the API extension of GET /1.0/metadata/configuration.
const metadataExtension = "metadata_configuration"

// keyDocs describes every key of keys (a test keeps the two in step) for
// GET /1.0/metadata/configuration; Scope comes from MemberKey.
var keyDocs = map[string]api.MetadataConfigKey{
	KeyHTTPSAddress:        {Type: "string", Default: DefaultHTTPSAddress, Description: "Address to bind for the remote API (HTTPS)"},
	tokens.KeyAdvertise:    {Type: "string", Description: "Addresses (host:port, comma-separated) written in trust tokens instead of the listen addresses"},
	tokens.KeyExpiry:       {Type: "string", Default: tokens.DefaultExpiry, Description: "Lifetime of new trust tokens, such as 1d 12H (units S, M, H, d, w, m, y)"},
	authn.KeyTrustCA:       {Type: "bool", Default: "false", Description: "Trust every client certificate signed by the CA, in date and not revoked, without a trust entry"},
	authn.KeyCRLFailClosed: {Type: "bool", Default: "false", Description: "Refuse CA-signed clients while the CRL in force is past its next update"},
	gate.KeyMaxStaleness:   {Type: "string", Default: gate.DefaultMaxStaleness.String(), Description: "How long an instance answers authenticated requests without news from the event stream (Go duration)"},

	acme.KeyDomain:    {Type: "string", Description: "Domain names of the ACME certificate, comma-separated"},
	acme.KeyEmail:     {Type: "string", Description: "Email address of the ACME account"},
	acme.KeyAgreeTOS:  {Type: "bool", Default: "false", Description: "Agree to the ACME terms of service"},
	acme.KeyCAURL:     {Type: "string", Default: acme.DefaultCAURL, Description: "URL of the directory of the ACME service"},
	acme.KeyHTTPPort:  {Type: "string", Description: "Port (or host:port) of the HTTP-01 challenge listener"},
	acme.KeyChallenge: {Type: "string", Default: "HTTP-01", Description: "ACME challenge type (HTTP-01)"},
	acme.KeyEABKID:    {Type: "string", Description: "Key identifier of the ACME external account binding"},
	acme.KeyEABHMAC:   {Type: "string", Description: "HMAC key of the ACME external account binding (sealed, never shown)"},

	oidc.KeyIssuer:         {Type: "string", Description: "OpenID Connect issuer URL"},
	oidc.KeyClientID:       {Type: "string", Description: "OpenID Connect client identifier"},
	oidc.KeyDeviceClientID: {Type: "string", Description: "OpenID Connect client identifier of the device flow, if it differs"},
	oidc.KeyAudience:       {Type: "string", Description: "Expected audience of OpenID Connect access tokens"},
	oidc.KeyClaim:          {Type: "string", Description: "Claim that names the user"},
	oidc.KeyGroupsClaim:    {Type: "string", Description: "Claim that lists the user's groups"},
	oidc.KeyScopes:         {Type: "string", Default: strings.Join(oidc.DefaultScopes, ", "), Description: "Scopes to request, comma- or space-separated (must include openid)"},
	oidc.KeyDefaultAccess:  {Type: "string", Default: "none", Description: "Access of OIDC users without a grant: none or admin"},
}

// configMetadata is the reply of GET /1.0/metadata/configuration: the
// server keys grouped by their first component.
var configMetadata = func() response.Reply {
	groups := map[string]api.MetadataConfigGroup{}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		doc := keyDocs[k]
		doc.Scope = "global"
		if MemberKey(k) {
			doc.Scope = "local"
		}
		name, _, _ := strings.Cut(k, ".")
		g := groups[name]
		g.Keys = append(g.Keys, map[string]api.MetadataConfigKey{k: doc})
		groups[name] = g
	}
	return response.SyncReply(api.MetadataConfiguration{Configs: map[string]map[string]api.MetadataConfigGroup{"server": groups}}, nil)
}()

// metadataRoute serves GET /1.0/metadata/configuration to anyone, as LXD
// and Incus do: the names of configuration keys are no secret, and a
// client checks a key against them before it reads or unsets it.
var metadataRoute = gate.Route{Method: "GET", Path: "/1.0/metadata/configuration", Untrusted: true, Ungranted: true,
	Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { configMetadata.Write(w) })}
