// Package frontdoor puts any HTTP API behind Trustlog: requests the gate
// admitted (a trusted identity with some access) are proxied to the
// upstream with the caller's identity in X-Trustlog-* headers; the gate
// answers everyone else with the API's 401 or 403. Copies of those headers
// sent by the client are removed first, so the upstream can trust them.
package frontdoor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/response"
)

// Headers the upstream receives.
const (
	HeaderIdentity    = "X-Trustlog-Identity"    // the user name (certificate fingerprint, OIDC user name)
	HeaderFingerprint = "X-Trustlog-Fingerprint" // the client certificate's fingerprint, if any
	HeaderMethod      = "X-Trustlog-Method"      // tls, oidc, pki, cluster, unix
	HeaderProjects    = "X-Trustlog-Projects"    // comma-separated projects of a restricted caller
	HeaderRestricted  = "X-Trustlog-Restricted"  // "true" or "false"
)

// New returns a handler proxying to target: "http://host:port[/base]",
// "https://…", or "unix:/path/to/socket" (HTTP over a unix socket).
func New(target string, log *slog.Logger) (http.Handler, error) {
	if log == nil {
		log = slog.Default()
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	var u *url.URL
	if path, ok := strings.CutPrefix(target, "unix:"); ok {
		if path == "" {
			return nil, fmt.Errorf("frontdoor: %q names no socket", target)
		}
		u = &url.URL{Scheme: "http", Host: "upstream"}
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	} else {
		var err error
		u, err = url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("frontdoor: upstream %q must be http(s)://host[:port][/path] or unix:/path", target)
		}
	}
	transport.ResponseHeaderTimeout = 60 * time.Second
	p := &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
			h := pr.Out.Header
			for k := range h {
				if strings.HasPrefix(strings.ToLower(k), "x-trustlog-") {
					h.Del(k)
				}
			}
			id := authn.FromContext(pr.In.Context())
			// A bearer credential was Trustlog's to check; it is not passed on.
			if id.Method == authn.MethodOIDC || id.Bearer {
				h.Del("Authorization")
				q := pr.Out.URL.Query()
				if q.Has("access_token") {
					q.Del("access_token")
					pr.Out.URL.RawQuery = q.Encode()
				}
			}
			h.Set(HeaderIdentity, id.Name)
			h.Set(HeaderFingerprint, id.Fingerprint)
			h.Set(HeaderMethod, id.Method)
			h.Set(HeaderRestricted, strconv.FormatBool(id.Restricted))
			h.Set(HeaderProjects, strings.Join(id.Projects, ","))
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("upstream unreachable", "err", err)
			response.Fail(w, r, log, &response.Error{Status: http.StatusBadGateway, Message: "Bad gateway: the upstream did not answer"})
		},
	}
	return p, nil
}
