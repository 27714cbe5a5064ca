// Package service assembles every function's routes behind the gate into one
// http.Handler, the way the local binary serves them.
package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/trustlog/trustlog/functions/acme"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/certificates"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/denials"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/identities"
	"github.com/trustlog/trustlog/functions/metrics"
	"github.com/trustlog/trustlog/functions/oidc"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/sealing"
	"github.com/trustlog/trustlog/functions/serverinfo"
	"github.com/trustlog/trustlog/functions/tokens"
	"github.com/trustlog/trustlog/functions/watch"
)

// The functions, as hosts deploy them: each serves its routes.
const (
	FunctionServer       = "server"       // GET /, GET|PUT|PATCH /1.0
	FunctionCertificates = "certificates" // /1.0/certificates...
	FunctionOperations   = "operations"   // /1.0/operations... (trust tokens)
	FunctionPKI          = "pki"          // /1.0/trustlog/pki/...
	FunctionIdentities   = "identities"   // /1.0/auth/identities...
	FunctionMetrics      = "metrics"      // /1.0/metrics
)

// FunctionNames lists every function.
var FunctionNames = []string{FunctionServer, FunctionCertificates, FunctionOperations, FunctionPKI, FunctionIdentities, FunctionMetrics}

// Config holds what the functions need from their host.
type Config struct {
	// Model is the read model (a projections.Projector). Required.
	Model commit.ReadModel
	// Log appends events (a natsstore.Store). Required.
	Log commit.Log
	// Host describes the serving host. Required.
	Host serverinfo.Host
	// Source is the CloudEvents source of the events this host writes,
	// such as "/trustlog/<hostname>". Required.
	Source string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NewID returns a fresh event id; nil means random UUIDs.
	NewID func() string
	// Stream reports the newest stream sequence, for the lag metric; optional.
	Stream metrics.Stream
	// SealingKey is the 32-byte service key that seals token secrets. Without
	// it the API still serves everything but issuing tokens (read-only
	// hosts, such as a Lambda started without its secret).
	SealingKey []byte
	// Feed, if set, serves the event stream to clients (the /1.0/events
	// websocket, server-sent events for `trustlog monitor`, the audit
	// endpoints) when every function is served.
	Feed watch.Feed
	// Sync, if set, catches the read model up with the stream (the ACME
	// challenge route waits for an answer another instance just recorded).
	Sync func(context.Context) error
	// RenewCertificate, if set, obtains the served certificate from the
	// ACME CA now (POST /1.0/trustlog/acme/renew, admins).
	RenewCertificate func(context.Context) error
	// Fallback, if set, receives every admitted request no route matches
	// (the front door: see package frontdoor).
	Fallback http.Handler
	// Functions, if set, serves only the routes of the named functions
	// (see FunctionNames); a Lambda serves one. Empty means all of them.
	Functions []string
	// Random is the source of token secrets; nil means crypto/rand.
	Random io.Reader
	// Logger receives internal errors; nil means slog.Default().
	Logger *slog.Logger
	// OIDC verifies OpenID Connect access tokens and discovers issuers;
	// nil means an oidc.Verifier with a default HTTP client and Now.
	OIDC *oidc.Verifier
}

// Validate reports missing required fields.
func (c Config) Validate() error {
	var errs []error
	if c.Model == nil {
		errs = append(errs, errors.New("service: Model is required"))
	}
	if c.Log == nil {
		errs = append(errs, errors.New("service: Log is required"))
	}
	if c.Host == nil {
		errs = append(errs, errors.New("service: Host is required"))
	}
	if c.Source == "" {
		errs = append(errs, errors.New("service: Source is required"))
	}
	if len(c.SealingKey) != 0 && len(c.SealingKey) != sealing.KeySize {
		errs = append(errs, fmt.Errorf("service: SealingKey must be %d bytes", sealing.KeySize))
	}
	for _, f := range c.Functions {
		if !slices.Contains(FunctionNames, f) {
			errs = append(errs, fmt.Errorf("service: unknown function %q (known: %s)", f, strings.Join(FunctionNames, ", ")))
		}
	}
	return errors.Join(errs...)
}

// Service is the API: an http.Handler, plus the background work its
// functions need (expiring tokens).
type Service struct {
	handler *gate.Gate
	tokens  *tokens.Handler
	denials *denials.Recorder
}

// FlushDenials records the refused attempts counted since the last flush
// (one AccessDeniedSummary event) and returns how many events it wrote.
func (s *Service) FlushDenials(ctx context.Context) (int, error) { return s.denials.Flush(ctx) }

// RunDenials flushes refused attempts every interval until ctx ends.
func (s *Service) RunDenials(ctx context.Context, interval time.Duration) {
	s.denials.Run(ctx, interval)
}

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Routes returns the routes the API serves (shared: do not modify).
func (s *Service) Routes() []gate.Route { return s.handler.Routes() }

// Policy returns the route that decides r: the one serving it, or
// gate.FrontDoor for a request no route serves. The Lambda authorizer
// decides with it, as the gate does.
func (s *Service) Policy(r *http.Request) gate.Route {
	if rt, ok := s.handler.Match(r); ok {
		return rt
	}
	return gate.FrontDoor
}

// Sweep expires the tokens whose expiry has passed at now.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int, error) {
	return s.tokens.Sweep(ctx, now)
}

// RunSweeper expires tokens every interval until ctx ends.
func (s *Service) RunSweeper(ctx context.Context, interval time.Duration) {
	s.tokens.RunSweeper(ctx, interval)
}

// New returns the API.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	if cfg.NewID == nil {
		random := cfg.Random
		cfg.NewID = func() string { return uuid.Must(uuid.NewRandomFromReader(random)).String() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var box *sealing.Box
	if len(cfg.SealingKey) > 0 {
		var err error
		if box, err = sealing.New(cfg.SealingKey, cfg.Random); err != nil {
			return nil, err
		}
	}
	c := &commit.Committer{Model: cfg.Model, Log: cfg.Log, Now: cfg.Now, NewID: cfg.NewID, Source: cfg.Source}
	if cfg.OIDC == nil {
		cfg.OIDC = oidc.New(nil, cfg.Now)
	}
	auth := authn.New(cfg.Model, cfg.Now).WithOIDC(cfg.OIDC)
	model := cfg.Model
	tok := tokens.New(tokens.Config{
		Model: cfg.Model, Committer: c, Host: cfg.Host, Box: box,
		Now: cfg.Now, Random: cfg.Random, NewID: cfg.NewID, Log: cfg.Logger,
	})
	ids := identities.New(cfg.Model, c, tok, cfg.Now, cfg.Logger)
	refused := denials.New(c, cfg.Now, cfg.Logger)
	met := metrics.New(cfg.Model, cfg.Stream, cfg.Now)
	byFunction := map[string][]gate.Route{
		FunctionServer:       serverinfo.New(cfg.Model, c, cfg.Host, cfg.Logger).WithOIDC(cfg.OIDC).WithSealing(sealer(box)).Routes(),
		FunctionCertificates: certificates.New(cfg.Model, c, tok, cfg.Now, cfg.Logger).Routes(),
		FunctionOperations:   tok.Routes(),
		FunctionPKI:          pki.New(cfg.Model, c, cfg.Now, cfg.Logger).Routes(),
		FunctionIdentities:   ids.Routes(),
		FunctionMetrics:      met.Routes(),
	}
	serve := cfg.Functions
	if len(serve) == 0 {
		serve = FunctionNames
	}
	var routes []gate.Route
	for _, f := range serve {
		routes = append(routes, byFunction[f]...)
	}
	if len(cfg.Functions) == 0 || slices.Contains(cfg.Functions, FunctionServer) {
		routes = append(routes, acme.NewHandler(cfg.Model, cfg.Sync, cfg.Logger).Routes(cfg.RenewCertificate)...)
	}
	if cfg.Feed != nil && len(cfg.Functions) == 0 {
		live, _ := cfg.Model.(watch.Model)
		routes = append(routes, watch.New(cfg.Feed, live, auth, cfg.Now, cfg.Logger).Routes()...)
	}
	var staleness func(time.Time) error
	if lc, ok := cfg.Model.(interface{ LastContact() time.Time }); ok {
		staleness = func(now time.Time) error { return gate.Stale(cfg.Model.Snapshot(), lc.LastContact(), now) }
	}
	return &Service{
		handler: gate.New(gate.Config{
			Staleness:     staleness,
			Broken:        func() error { return gate.Broken(model.Snapshot()) },
			Authenticator: auth, Observer: met, Logger: cfg.Logger, Recorder: ids, Fallback: cfg.Fallback, Denials: refused,
			Challenge: func(h http.Header) { oidc.SettingsOf(model.Snapshot()).Challenge(h) },
		}, routes...),
		tokens:  tok,
		denials: refused,
	}, nil
}

// sealer seals sensitive configuration values with the service key (the
// key name as additional data); nil without a key.
func sealer(box *sealing.Box) serverinfo.Sealer {
	if box == nil {
		return nil
	}
	return func(key, value string) (string, error) { return box.Seal([]byte(value), []byte(key)) }
}
