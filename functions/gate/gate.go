// Package gate is the front door of the API: it authenticates every request
// once, admits it to a route or refuses it, and applies the limits every
// endpoint shares. Routes are plain net/http handlers.
package gate

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
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
	// Ungranted admits identities that authenticated but hold no access
	// (an OIDC user nobody granted anything yet). Everywhere else they are
	// refused.
	Ungranted bool
	// Handler serves the route; authn.FromContext gives it the caller.
	Handler http.Handler
}

// Observer is told about every decision and response; metrics implement it.
// Its methods must be safe for concurrent use and must not block.
type Observer interface {
	// Authenticated reports the identity of a request and whether the gate
	// admitted it to its route.
	Authenticated(id authn.Identity, admitted bool)
	// Served reports the route pattern, status and duration of a response.
	Served(route string, status int, d time.Duration)
}

// Config configures the gate.
type Config struct {
	// Authenticator identifies callers. Required.
	Authenticator *authn.Authenticator
	// Observer, if set, sees every decision and response.
	Observer Observer
	// Now is the clock for durations; nil means time.Now.
	Now func() time.Time
	// systemClock is set when Now is time.Now: the authenticator may then
	// use the gate's reading instead of reading the clock again.
	systemClock bool
	// Logger receives internal errors; nil means slog.Default().
	Logger *slog.Logger
	// Challenge, if set, writes the OIDC headers of a 401 (see
	// authn.Identity.Challenge).
	Challenge func(http.Header)
	// Recorder, if set, records the identity of an OIDC user on their
	// first authenticated request.
	Recorder Recorder
	// Staleness, if set, returns an error while the read model has lost
	// contact with the event stream for too long: authenticated requests
	// (other than on the unix socket) then fail closed with it, since a
	// stale trust store could miss a revocation.
	Staleness func(now time.Time) error
	// Denials, if set, is told about every refused request after it is
	// answered, to record attempts worth auditing.
	Denials Denials
	// Fallback, if set, serves every request no route matches, for
	// trusted callers with some access (the front door to an upstream);
	// others get 401/403 as on any route. Nil answers 404.
	Fallback http.Handler
}

// Denials counts refused requests (package denials implements it). Denied
// must not block.
type Denials interface {
	Denied(id authn.Identity, r *http.Request, route string, status int)
}

// Recorder records identities that authenticated but are not in the read
// model yet, and returns them with their identity id.
type Recorder interface {
	Record(ctx context.Context, id authn.Identity) (authn.Identity, error)
}

// Answers to a request whose credentials did not authenticate while OIDC
// is configured: the client should refresh or (re)run its login.
var (
	errChallenge = response.Errorf(http.StatusUnauthorized, "Authentication required: the bearer token is missing or invalid")
	errExpired   = response.Errorf(http.StatusUnauthorized, "Authentication required: the access token has expired")
)

// errUngranted refuses an identity that holds no access yet.
var errUngranted = response.Forbidden("This identity has no access yet: an administrator must grant it (trustlog auth identity grant)")

// New returns a handler serving routes behind the gate. Unknown paths get a
// 404 in the error envelope.
func New(cfg Config, routes ...Route) http.Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now, cfg.systemClock = time.Now, true
	}
	rt := newRouter()
	for _, route := range routes {
		rt.handle(route.Method, route.Path, admit(cfg, log, route))
	}
	if cfg.Fallback != nil {
		rt.handle("", "/", admit(cfg, log, Route{Path: "/", Handler: cfg.Fallback}))
	} else {
		rt.handle("", "/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			response.Fail(w, r, log, response.ErrNotFound)
		}))
	}
	return rt
}

// router finds the routes without wildcards by an exact lookup of method
// and path, which most requests name, before the mux's pattern matching (a
// few hundred nanoseconds a request under load). The mux would choose the
// same route for them: a literal path is the most specific pattern. Any
// other request (wildcards, HEAD, an escaped or unclean path) goes to the
// mux, which also cleans, redirects and answers 404 and 405.
type router struct {
	exact map[string]map[string]http.Handler
	mux   *http.ServeMux
}

func newRouter() *router {
	return &router{exact: map[string]map[string]http.Handler{}, mux: http.NewServeMux()}
}

// handle serves method (any, if "") and path with h.
func (rt *router) handle(method, path string, h http.Handler) {
	if method == "" {
		rt.mux.Handle(path, h)
		return
	}
	rt.mux.Handle(method+" "+path, h)
	if !strings.ContainsAny(path, "{}") && !strings.HasSuffix(path, "/") {
		if rt.exact[method] == nil {
			rt.exact[method] = map[string]http.Handler{}
		}
		rt.exact[method][path] = h
	}
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawPath == "" {
		if h, ok := rt.exact[r.Method][r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
	}
	rt.mux.ServeHTTP(w, r)
}

func admit(cfg Config, log *slog.Logger, rt Route) http.Handler {
	a, obs, route := cfg.Authenticator, cfg.Observer, rt.Method+" "+rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id authn.Identity
		start := cfg.Now()
		if obs != nil || cfg.Denials != nil {
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			w = sw
			defer func() {
				if obs != nil {
					obs.Served(route, sw.status, cfg.Now().Sub(start))
				}
				if cfg.Denials != nil && sw.status >= 400 {
					cfg.Denials.Denied(id, r, route, sw.status)
				}
			}()
		}
		// Header.Get's first value, read by the canonical key directly.
		if v := r.Header["Sec-Fetch-Site"]; len(v) > 0 && (v[0] == "cross-site" || v[0] == "same-site") {
			response.Fail(w, r, log, response.Forbidden("Forbidden Sec-Fetch-Site header value"))
			return
		}
		// handed on as it is unless changed below
		var shared *authn.Identity
		if cfg.systemClock {
			shared = a.IdentifyAt(r, start)
		} else {
			shared = a.Identify(r)
		}
		id = *shared
		if id.Challenge && cfg.Challenge != nil {
			if obs != nil {
				obs.Authenticated(id, false)
			}
			cfg.Challenge(w.Header())
			// RFC 6750: a machine-readable reason next to the envelope.
			if id.ChallengeExpired {
				w.Header().Set("WWW-Authenticate", `Bearer realm="trustlog", error="invalid_token", error_description="The access token expired"`)
				response.Fail(w, r, log, errExpired)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="trustlog", error="invalid_token"`)
			response.Fail(w, r, log, errChallenge)
			return
		}
		if id.Trusted && id.Method == authn.MethodOIDC && id.IdentityID == "" && cfg.Recorder != nil {
			recorded, err := cfg.Recorder.Record(r.Context(), id)
			if err != nil {
				response.Fail(w, r, log, err)
				return
			}
			id, shared = recorded, nil
		}
		if id.Trusted && id.Method != authn.MethodUnix && cfg.Staleness != nil {
			if err := cfg.Staleness(start); err != nil {
				response.Fail(w, r, log, err)
				return
			}
		}
		if id.Trusted && id.Type == events.CertificateTypeMetrics && !rt.Metrics {
			id, shared = authn.Identity{Address: id.Address, Fingerprint: id.Fingerprint, PeerCertificate: id.PeerCertificate}, nil
		}
		admitted := id.Trusted || (rt.Untrusted && !expectsAuth(r))
		if obs != nil {
			obs.Authenticated(id, admitted)
		}
		if !admitted {
			response.Fail(w, r, log, response.ErrForbidden)
			return
		}
		if id.Ungranted() && !rt.Ungranted {
			response.Fail(w, r, log, errUngranted)
			return
		}
		if shared == nil {
			// A copy, not &id: taking id's address would move it to the
			// heap on every request, shared or not.
			shared = new(authn.Identity)
			*shared = id
		}
		rt.Handler.ServeHTTP(w, r.WithContext(authn.WithIdentityOf(r.Context(), shared)))
	})
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Hijack lets a websocket take the connection over.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Flush sends buffered data to the client (server-sent events).
func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// KeyMaxStaleness is the configuration key bounding how long an instance
// keeps answering authenticated requests after it last heard from the
// event stream (a Go duration, at least 1s; default DefaultMaxStaleness).
const KeyMaxStaleness = "core.max_staleness"

// DefaultMaxStaleness is the staleness bound when core.max_staleness is unset.
const DefaultMaxStaleness = 30 * time.Second

// ValidateMaxStaleness checks a value of core.max_staleness.
func ValidateMaxStaleness(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		return fmt.Errorf("%q must be a duration of at least 1s, such as 30s or 2m", v)
	}
	return nil
}

// errStale answers authenticated requests while the read model is stale.
var errStale = &response.Error{Status: http.StatusServiceUnavailable,
	Message: "Service unavailable: this instance has lost contact with the event stream, so it cannot vouch for its trust store"}

// Stale returns an error when lastContact (zero: never, at start) is more
// than the staleness bound of m before now.
func Stale(m *projections.Model, lastContact, now time.Time) error {
	// Contact within the smallest bound allowed is never stale: the common
	// case costs no configuration lookup on the request path.
	if lastContact.IsZero() || now.Sub(lastContact) <= time.Second {
		return nil
	}
	bound := DefaultMaxStaleness
	if d, err := time.ParseDuration(m.ConfigValue(KeyMaxStaleness)); err == nil && d >= time.Second {
		bound = d
	}
	if now.Sub(lastContact) > bound {
		return errStale
	}
	return nil
}
