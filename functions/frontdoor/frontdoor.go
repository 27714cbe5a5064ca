// Package frontdoor puts any HTTP API behind Trustlog: requests the gate
// admitted (a trusted identity with some access) are proxied to the
// upstream with the caller's identity in X-Trustlog-* headers; the gate
// answers everyone else with the API's 401 or 403. Every client header an
// upstream could read as one of those (see Reserved) is removed first, so
// the upstream can trust them.
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

// Headers the upstream receives. infra/template.yaml maps the same names
// from the Lambda authorizer's context; its test checks they agree.
const (
	HeaderIdentity    = "X-Trustlog-Identity"    // the user name (certificate fingerprint, OIDC user name)
	HeaderFingerprint = "X-Trustlog-Fingerprint" // the client certificate's fingerprint, if any
	HeaderMethod      = "X-Trustlog-Method"      // tls, oidc, pki, cluster, unix
	HeaderType        = "X-Trustlog-Type"        // the certificate's type (client, metrics), if any
	HeaderProjects    = "X-Trustlog-Projects"    // comma-separated projects of a restricted caller
	HeaderRestricted  = "X-Trustlog-Restricted"  // "true" or "false"
)

// Headers returns the names of every header the upstream receives.
func Headers() []string {
	return []string{HeaderIdentity, HeaderFingerprint, HeaderMethod, HeaderType, HeaderProjects, HeaderRestricted}
}

// reservedPrefix is what the normalized name of each of our headers, and
// of any we may add, starts with.
const reservedPrefix = "x-trustlog-"

// Reserved reports whether a request header called name could reach an
// upstream as one of ours, or as one we may add: whether its name, in lower
// case with every character other than a letter or digit read as "-",
// starts with "x-trustlog-". CGI and WSGI hosts fold case, "-" and "_"
// into one variable (X_Trustlog_Restricted and X-Trustlog-Restricted both
// become HTTP_X_TRUSTLOG_RESTRICTED, where a client's value can win or be
// joined to ours), and some fold every other punctuation mark too.
func Reserved(name string) bool {
	if len(name) < len(reservedPrefix) {
		return false
	}
	for i := range len(reservedPrefix) {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		default:
			c = '-'
		}
		if c != reservedPrefix[i] {
			return false
		}
	}
	return true
}

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
			for _, m := range []http.Header{h, pr.Out.Trailer} {
				for k := range m {
					if Reserved(k) {
						delete(m, k)
					}
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
			h.Set(HeaderType, id.Type)
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
