// Package service assembles every function's routes behind the gate into one
// http.Handler, the way the local binary serves them.
package service

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/certificates"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/serverinfo"
)

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
	// Logger receives internal errors; nil means slog.Default().
	Logger *slog.Logger
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
	return errors.Join(errs...)
}

// New returns the API handler.
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string { return uuid.Must(uuid.NewRandomFromReader(rand.Reader)).String() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &commit.Committer{Model: cfg.Model, Log: cfg.Log, Now: cfg.Now, NewID: cfg.NewID, Source: cfg.Source}
	auth := authn.New(cfg.Model, cfg.Now)
	var routes []gate.Route
	routes = append(routes, serverinfo.New(cfg.Model, c, cfg.Host, cfg.Logger).Routes()...)
	routes = append(routes, certificates.New(cfg.Model, c, cfg.Now, cfg.Logger).Routes()...)
	return gate.New(gate.Config{Authenticator: auth, Logger: cfg.Logger}, routes...), nil
}
