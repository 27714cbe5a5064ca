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
	// Admin admits only identities with full access (authn.Identity.Admin).
	// The others are refused with NotAdmin before the handler runs, so
	// before a byte of the request body is read.
	Admin bool
	// NotAdmin is the refusal of a caller without full access on an Admin
	// route; nil means response.ErrForbidden.
	NotAdmin error
	// MaxBody caps the request body: what the route needs, at most. Zero
	// means DefaultMaxBody. A caller who is not trusted never gets more
	// than UntrustedMaxBody, whatever the route allows.
	MaxBody int64
	// MaxInFlight, if positive, is how many requests of the route this
	// instance serves at once (a large upload's memory is that many
	// bodies at most); the others wait for their turn until their context
	// ends.
	MaxInFlight int
	// Handler serves the route; authn.FromContext gives it the caller.
	Handler http.Handler
}

// Body caps of the gate.
const (
	// DefaultMaxBody is the body cap of a route that sets none (Incus's
	// limit too).
	DefaultMaxBody = 1 << 20
	// UntrustedMaxBody caps the body of a caller who did not authenticate
	// (a token redemption, say, needs a few kilobytes).
	UntrustedMaxBody = 64 << 10
)

// FrontDoor is the policy of the requests no route serves, when the gate
// has a Fallback (and of every request the Lambda authorizer decides for
// an API behind Trustlog): trusted callers with some access; metrics
// certificates and untrusted callers are refused.
var FrontDoor = Route{Path: "/"}

// errNotAuthorized is the default refusal.
var errNotAuthorized error = response.ErrForbidden

// Decide is the admission rule of a route, shared by the gate and the
// Lambda authorizer so that the two cannot drift: given the identity authn
// found for r, it returns the identity the route's handler is to see (a
// metrics certificate counts as untrusted off the routes that admit it)
// or the refusal, an error for the API's envelope. The returned pointer is
// id itself when the identity is unchanged; neither is modified.
//
// An admitted identity may still be untrusted (on routes with an
// untrusted view); callers that admit only authenticated requests, like
// the authorizer, must check Trusted too.
func Decide(id *authn.Identity, rt Route, r *http.Request) (*authn.Identity, error) {
	id, _, err := decide(id, rt, r)
	return id, err
}

// decide is Decide, also reporting whether the identity passed the trust
// check (what the Observer counts as admitted).
func decide(id *authn.Identity, rt Route, r *http.Request) (_ *authn.Identity, trusted bool, _ error) {
	if id.Trusted && id.Type == events.CertificateTypeMetrics && !rt.Metrics {
		id = &authn.Identity{Address: id.Address, Fingerprint: id.Fingerprint, PeerCertificate: id.PeerCertificate}
	}
	if !id.Trusted && !(rt.Untrusted && !expectsAuth(r)) {
		return id, false, errNotAuthorized
	}
	if id.Ungranted() && !rt.Ungranted {
		return id, true, errUngranted
	}
	if rt.Admin && !id.Admin() {
		if rt.NotAdmin != nil {
			return id, true, rt.NotAdmin
		}
		return id, true, errNotAuthorized
	}
	return id, true, nil
}

// bodyLimit is the body cap of rt for id.
func bodyLimit(rt Route, id *authn.Identity) int64 {
	limit := rt.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if !id.Trusted && limit > UntrustedMaxBody {
		limit = UntrustedMaxBody
	}
	return limit
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
	// Broken, if set, returns an error once the read model has found the
	// event log broken (see Broken): every request then fails with it,
	// trusted or not, except on the unix socket (the operator's way in)
	// and on routes that admit metrics certificates (so that monitoring
	// still reads trustlog_chain_break_sequence). It is called on every
	// request and must cost no more than a pointer load.
	Broken func() error
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

// Gate serves routes behind the admission rule. It is an http.Handler.
type Gate struct {
	rt       *router
	routes   []Route
	patterns map[string]int // mux pattern → index in routes
}

// New returns the gate serving routes. Unknown paths get a 404 in the
// error envelope, or go to cfg.Fallback.
func New(cfg Config, routes ...Route) *Gate {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now, cfg.systemClock = time.Now, true
	}
	g := &Gate{rt: newRouter(), routes: routes, patterns: make(map[string]int, len(routes))}
	for i, route := range routes {
		g.rt.handle(route.Method, route.Path, admit(cfg, log, route))
		g.patterns[route.Method+" "+route.Path] = i
	}
	if cfg.Fallback != nil {
		fd := FrontDoor
		fd.Handler = cfg.Fallback
		g.rt.handle("", "/", admit(cfg, log, fd))
	} else {
		g.rt.handle("", "/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			response.Fail(w, r, log, response.ErrNotFound)
		}))
	}
	return g
}

// ServeHTTP implements http.Handler.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.rt.ServeHTTP(w, r) }

// Routes returns the routes the gate serves, in the order given to New.
// The slice is shared: callers must not modify it.
func (g *Gate) Routes() []Route { return g.routes }

// Match returns the route that serves r (as ServeHTTP would choose it), or
// false when none does: an unknown path, or one the mux would redirect.
func (g *Gate) Match(r *http.Request) (Route, bool) {
	_, pattern := g.rt.mux.Handler(r)
	i, ok := g.patterns[pattern]
	if !ok {
		return Route{}, false
	}
	return g.routes[i], true
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

// errBusy answers a request that gave up waiting for its route's turn.
var errBusy = &response.Error{Status: http.StatusServiceUnavailable, Message: "Service unavailable: too many requests of this kind at once, try again"}

func admit(cfg Config, log *slog.Logger, rt Route) http.Handler {
	a, obs, route := cfg.Authenticator, cfg.Observer, rt.Method+" "+rt.Path
	var turns chan struct{}
	if rt.MaxInFlight > 0 {
		turns = make(chan struct{}, rt.MaxInFlight)
	}
	broken := cfg.Broken
	if rt.Metrics {
		broken = nil
	}
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
		if broken != nil && id.Method != authn.MethodUnix {
			if err := broken(); err != nil {
				response.Fail(w, r, log, err)
				return
			}
		}
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
		if shared == nil {
			// A copy, not &id: taking id's address would move it to the
			// heap on every request, shared or not.
			shared = new(authn.Identity)
			*shared = id
		}
		decided, admitted, err := decide(shared, rt, r)
		if decided != shared {
			id = *decided
		}
		if obs != nil {
			obs.Authenticated(id, admitted)
		}
		if err != nil {
			response.Fail(w, r, log, err)
			return
		}
		if r.ContentLength != 0 {
			// Only now, admitted, is the body read, and no further than
			// this route needs.
			limit := bodyLimit(rt, decided)
			if r.ContentLength > limit {
				response.Fail(w, r, log, &http.MaxBytesError{Limit: limit})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		if turns != nil {
			select {
			case turns <- struct{}{}:
				defer func() { <-turns }()
			case <-r.Context().Done():
				response.Fail(w, r, log, errBusy)
				return
			}
		}
		rt.Handler.ServeHTTP(w, r.WithContext(authn.WithIdentityOf(r.Context(), decided)))
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

// Broken returns the refusal of every request (but the unix socket's) once
// m has found the event log broken (projections.Model.ChainBreak), naming
// where and why, or nil while the log is one hash chain. An instance that
// cannot trust its log cannot vouch for a trust store folded from it.
func Broken(m *projections.Model) error {
	seq := m.ChainBreak()
	if seq == 0 {
		return nil
	}
	return &response.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf(
		"Service unavailable: the event log is broken at sequence %d: %s; this instance will not vouch for its trust store",
		seq, m.ChainBreakReason())}
}
