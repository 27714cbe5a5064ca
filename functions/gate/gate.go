// Package gate is the front door of the API: it authenticates every request
// once, admits it to a route or refuses it, and applies the limits every
// endpoint shares. Routes are plain net/http handlers.
package gate

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/response"
)

// Route is one endpoint: a method and a net/http pattern path.
type Route struct {
	// Method is the HTTP method, such as "GET".
	Method string
	// Path is a net/http ServeMux path pattern, such as "/1.0/certificates/{fingerprint}".
	Path string
	// Untrusted admits callers that did not authenticate (LXD's
	// "allow untrusted"). They get an untrusted Identity.
	Untrusted bool
	// Metrics admits metrics certificates. Everywhere else a metrics
	// certificate counts as untrusted.
	Metrics bool
	// Handler serves the route; authn.FromContext gives it the caller.
	Handler http.Handler
}

// Config configures the gate.
type Config struct {
	// Authenticator identifies callers. Required.
	Authenticator *authn.Authenticator
	// Logger receives internal errors; nil means slog.Default().
	Logger *slog.Logger
}

// New returns a handler serving routes behind the gate. Unknown paths get a
// 404 in the error envelope.
func New(cfg Config, routes ...Route) http.Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+rt.Path, admit(cfg.Authenticator, log, rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		response.Fail(w, r, log, response.ErrNotFound)
	})
	return mux
}

func admit(a *authn.Authenticator, log *slog.Logger, rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "cross-site", "same-site":
			response.Fail(w, r, log, response.Forbidden("Forbidden Sec-Fetch-Site header value"))
			return
		}
		id := a.Authenticate(r)
		if id.Trusted && id.Type == events.CertificateTypeMetrics && !rt.Metrics {
			id = authn.Identity{Address: id.Address, Fingerprint: id.Fingerprint, PeerCertificate: id.PeerCertificate}
		}
		if !id.Trusted && (!rt.Untrusted || expectsAuth(r)) {
			response.Fail(w, r, log, response.ErrForbidden)
			return
		}
		rt.Handler.ServeHTTP(w, r.WithContext(authn.WithIdentity(r.Context(), id)))
	})
}

// expectsAuth reports whether the client said it must be authenticated,
// which turns the untrusted view of an endpoint into a refusal.
func expectsAuth(r *http.Request) bool {
	for _, h := range []string{"X-Incus-authenticated", "X-LXD-authenticated"} {
		if v := r.Header.Get(h); v != "" && !strings.EqualFold(v, "false") {
			return true
		}
	}
	return false
}
