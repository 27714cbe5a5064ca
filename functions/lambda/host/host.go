// Package host runs Trustlog's functions as AWS Lambdas. It is the Lambda
// counterpart of local/daemon: it connects to the NATS JetStream cluster,
// keeps the read model (replayed at cold start, caught up before every
// invocation), and serves the same handlers through aws-lambda-go-api-proxy.
//
// In AWS, TLS ends at the gateway, so the client certificate reaches the
// function in the gateway's request context (API Gateway REST and HTTP
// API) or in the X-Amzn-Mtls-Clientcert header an ALB in passthrough mode
// adds. Which one is read is configuration (TRUSTLOG_GATEWAY); everything
// a client could forge on the way in is deleted before anything reads it.
package host

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/oidc"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/functions/service"
	"github.com/trustlog/trustlog/projections"
)

// Gateway modes: where the client certificate comes from.
const (
	// GatewayREST is API Gateway REST (payload 1.0) with mutual TLS:
	// requestContext.identity.clientCert.clientCertPem.
	GatewayREST = "rest"
	// GatewayHTTP is API Gateway HTTP API (payload 2.0) with mutual TLS:
	// requestContext.authentication.clientCert.clientCertPem.
	GatewayHTTP = "http"
	// GatewayALB is an Application Load Balancer with mutual TLS in
	// passthrough mode: the X-Amzn-Mtls-Clientcert header.
	GatewayALB = "alb"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvNATSURL     = "TRUSTLOG_NATS_URL"
	EnvNATSCreds   = "TRUSTLOG_NATS_CREDS"
	EnvSealingKey  = "TRUSTLOG_SEALING_KEY"
	EnvGateway     = "TRUSTLOG_GATEWAY"
	EnvServerCert  = "TRUSTLOG_SERVER_CERTIFICATE"
	EnvAddresses   = "TRUSTLOG_ADDRESSES"
	EnvServerName  = "TRUSTLOG_SERVER_NAME"
	EnvStream      = "TRUSTLOG_STREAM"
	EnvLambdaName  = "AWS_LAMBDA_FUNCTION_NAME"
	defaultTimeout = 10 * time.Second
)

// envGetter reads the environment; a variable so that mains share it.
var envGetter = os.Getenv

// Config configures a Host.
type Config struct {
	// NATSURL is the NATS cluster ("tls://a:4222,tls://b:4222"). Required.
	NATSURL string
	// NATSCreds is a credentials file; optional.
	NATSCreds string
	// Stream is the stream name; "" means natsstore.DefaultStream.
	Stream string
	// SealingKey is the 32-byte service key; without it tokens cannot be
	// issued (everything else works).
	SealingKey []byte
	// Gateway is GatewayREST, GatewayHTTP or GatewayALB. Required.
	Gateway string
	// Functions are the functions served (service.FunctionNames); empty
	// means all.
	Functions []string
	// ServerCertificate is the PEM of the certificate the gateway presents,
	// pinned by trust tokens and shown in GET /1.0; optional.
	ServerCertificate string
	// Addresses are the host:port addresses trust tokens advertise
	// (core.https_advertise_addresses wins when set).
	Addresses []string
	// ServerName is the server_name of GET /1.0.
	ServerName string
	// CatchUp bounds the wait, at the start of each invocation, for the read
	// model to apply what the stream held then; 0 means 5 seconds.
	CatchUp time.Duration
	// Logger receives the host's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ConfigFromEnv reads the configuration from the environment (getenv is
// os.Getenv in a Lambda) for the given functions.
func ConfigFromEnv(getenv func(string) string, functions ...string) (Config, error) {
	cfg := Config{
		NATSURL: getenv(EnvNATSURL), NATSCreds: getenv(EnvNATSCreds), Stream: getenv(EnvStream),
		Gateway: getenv(EnvGateway), Functions: functions, ServerCertificate: getenv(EnvServerCert),
		ServerName: getenv(EnvServerName),
	}
	if cfg.ServerName == "" {
		cfg.ServerName = getenv(EnvLambdaName)
	}
	for _, a := range strings.Split(getenv(EnvAddresses), ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Addresses = append(cfg.Addresses, a)
		}
	}
	if k := getenv(EnvSealingKey); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(key) != 32 {
			return cfg, fmt.Errorf("%s must be 32 bytes in base64", EnvSealingKey)
		}
		cfg.SealingKey = key
	}
	return cfg, cfg.Validate()
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	var errs []error
	if c.NATSURL == "" {
		errs = append(errs, fmt.Errorf("host: %s is required", EnvNATSURL))
	}
	switch c.Gateway {
	case GatewayREST, GatewayHTTP, GatewayALB:
	default:
		errs = append(errs, fmt.Errorf("host: %s must be %q, %q or %q, not %q", EnvGateway, GatewayREST, GatewayHTTP, GatewayALB, c.Gateway))
	}
	if c.ServerCertificate != "" {
		if b, _ := pem.Decode([]byte(c.ServerCertificate)); b == nil {
			errs = append(errs, fmt.Errorf("host: %s is not a PEM certificate", EnvServerCert))
		}
	}
	return errors.Join(errs...)
}

// Host is a running function host. It is safe for concurrent use.
type Host struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	store   *natsstore.Store
	proj    *projections.Projector
	svc     *service.Service
	auth    *authn.Authenticator
	handler http.Handler
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	certFP  string

	flushMu   sync.Mutex
	lastFlush time.Time
}

// Start connects to NATS, replays the stream into the read model and
// returns a Host ready to serve.
func Start(ctx context.Context, cfg Config) (_ *Host, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = 5 * time.Second
	}
	h := &Host{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if cfg.ServerCertificate != "" {
		b, _ := pem.Decode([]byte(cfg.ServerCertificate))
		sum := sha256.Sum256(b.Bytes)
		h.certFP = hex.EncodeToString(sum[:])
	}
	// No reconnect buffer: a publish while disconnected fails at once,
	// so a write answered 503 is never sent after the reconnection.
	opts := []nats.Option{nats.Name("trustlog-lambda"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), nats.Timeout(defaultTimeout)}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if h.nc, err = nats.Connect(cfg.NATSURL, opts...); err != nil {
		return nil, fmt.Errorf("host: connect to NATS: %w", err)
	}
	if h.store, err = natsstore.Open(ctx, h.nc, natsstore.Config{Stream: cfg.Stream}); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	var start *projections.Model
	if m, err := natsstore.RestoreModel(ctx, h.store, projections.DecodeSnapshot); err == nil {
		start = m
		h.log.Info("read model restored from a snapshot", "seq", m.Seq())
	} else if !errors.Is(err, natsstore.ErrNoSnapshot) {
		h.log.Warn("snapshot not used: replaying the whole stream", "err", err)
	}
	h.proj = projections.NewProjector(h.store, projections.ProjectorConfig{Logger: h.log, Start: start})
	h.wg.Go(func() { _ = h.proj.Run(runCtx) })
	if err := h.proj.Sync(ctx); err != nil {
		return nil, fmt.Errorf("host: replaying the event stream: %w", err)
	}
	verifier := oidc.New(nil, cfg.Now)
	name, _ := os.Hostname()
	h.svc, err = service.New(service.Config{
		Model: h.proj, Log: h.store, Host: h, Source: "/trustlog/lambda/" + cfg.ServerName + "/" + name,
		Now: cfg.Now, Stream: h.store, SealingKey: cfg.SealingKey, Logger: h.log, OIDC: verifier,
		Functions: cfg.Functions,
	})
	if err != nil {
		return nil, err
	}
	h.auth = authn.New(h.proj, cfg.Now).WithOIDC(verifier)
	h.handler = h.fresh(FromGateway(cfg.Gateway, h.svc, h.log))
	h.lastFlush = cfg.Now()
	return h, nil
}

// ServeHTTP serves a request the adapter built from a gateway event.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// Sweep expires the tokens whose expiry has passed (the sweeper function).
func (h *Host) Sweep(ctx context.Context) (int, error) {
	if err := h.catchUp(ctx); err != nil {
		return 0, err
	}
	return h.svc.Sweep(ctx, h.cfg.Now())
}

// SaveSnapshot stores the read model as the snapshot cold starts begin
// from, if it is at least every events past the stored one. It returns
// whether it stored one.
func (h *Host) SaveSnapshot(ctx context.Context, every uint64) (bool, error) {
	if err := h.catchUp(ctx); err != nil {
		return false, err
	}
	m := h.proj.Snapshot()
	if m.Seq() < h.store.LastSnapshotSeq(ctx)+every {
		return false, nil
	}
	_, err := natsstore.SaveModel(ctx, h.store, m, projections.EncodeSnapshot, 0)
	return err == nil, err
}

// Model returns the read model's current snapshot.
func (h *Host) Model() *projections.Model { return h.proj.Snapshot() }

// Close stops the read model and closes the NATS connection.
func (h *Host) Close() {
	if h.cancel != nil {
		h.cancel()
	}
	h.wg.Wait()
	if h.nc != nil {
		h.nc.Close()
	}
}

// Certificate implements serverinfo.Host: the gateway's certificate, if
// configured.
func (h *Host) Certificate() (string, string) { return h.cfg.ServerCertificate, h.certFP }

// Addresses implements serverinfo.Host.
func (h *Host) Addresses() []string { return h.cfg.Addresses }

// ServerName implements serverinfo.Host.
func (h *Host) ServerName() string { return h.cfg.ServerName }

// errCatchingUp answers an invocation whose read model could not reach the
// stream's state in time: answering from an older model could miss a
// revocation, so the function fails closed.
var errCatchingUp = &response.Error{Status: http.StatusServiceUnavailable, Message: "Service unavailable: the trust store is catching up, try again"}

// catchUp waits until the read model has applied every event the stream
// held when it was called: one stream-info request, then (usually) no
// wait at all. A Lambda's model is frozen between invocations, so without
// this it could answer from a state that misses a revocation.
func (h *Host) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CatchUp)
	defer cancel()
	seq, err := h.store.LastSeq(ctx)
	if err != nil {
		h.log.Warn("stream unreachable before an invocation", "err", err)
		return errCatchingUp
	}
	if err := h.proj.WaitFor(ctx, seq); err != nil {
		h.log.Warn("read model did not catch up", "want", seq, "have", h.proj.Snapshot().Seq(), "err", err)
		return errCatchingUp
	}
	return nil
}

func (h *Host) fresh(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.catchUp(r.Context()); err != nil {
			response.Fail(w, r, h.log, err)
			return
		}
		next.ServeHTTP(w, r)
		h.flushDenials(r.Context())
	})
}

// denialFlushInterval is how often a warm function records the refused
// attempts it counted (a Lambda has no background loop of its own: it
// flushes at the end of an invocation once the interval has passed).
const denialFlushInterval = time.Minute

func (h *Host) flushDenials(ctx context.Context) {
	h.flushMu.Lock()
	due := h.cfg.Now().Sub(h.lastFlush) >= denialFlushInterval
	if due {
		h.lastFlush = h.cfg.Now()
	}
	h.flushMu.Unlock()
	if !due {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := h.svc.FlushDenials(ctx); err != nil {
		h.log.Warn("refused attempts not recorded yet", "err", err)
	}
}

// tlsState marks a request that arrived over TLS at the gateway.
var tlsState = &tls.ConnectionState{HandshakeComplete: true}

// parseChain decodes a PEM chain (leaf first). It fails on anything that
// is not a sequence of parseable certificates.
func parseChain(pemText string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := []byte(pemText)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("no complete PEM certificate")
	}
	return chain, nil
}
