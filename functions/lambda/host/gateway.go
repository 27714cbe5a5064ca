package host

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/response"
)

// HeaderALBClientCert is the header an ALB in mutual-TLS passthrough mode
// fills with the client's chain: URL-encoded PEM, leaf first.
const HeaderALBClientCert = "X-Amzn-Mtls-Clientcert"

// errBadClientCert answers an ALB request whose certificate header does not
// decode: it is never treated as "no certificate" silently.
var errBadClientCert = response.BadRequest("Malformed client certificate from the load balancer")

// FromGateway returns next behind the gateway's view of the client: it
// deletes every header a client could use to forge the gateway's context
// (X-GoLambdaProxy-*, which the adapters' plain Proxy path would trust,
// and X-Amzn-Mtls-* outside ALB mode), takes the client certificate from
// where the gateway puts it, and hands it to authn.
func FromGateway(mode string, next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		albCert := r.Header.Values(HeaderALBClientCert)
		for k := range r.Header {
			lk := strings.ToLower(k)
			if strings.HasPrefix(lk, "x-golambdaproxy-") || strings.HasPrefix(lk, "x-amzn-mtls-") {
				r.Header.Del(k)
			}
		}
		var certPEM string
		switch mode {
		case GatewayREST:
			if rc, ok := core.GetAPIGatewayContextFromContext(r.Context()); ok && rc.Identity.ClientCert != nil {
				certPEM = rc.Identity.ClientCert.ClientCertPem
			}
		case GatewayHTTP:
			if rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok {
				certPEM = rc.Authentication.ClientCert.ClientCertPem
			}
		case GatewayALB:
			if len(albCert) > 1 {
				response.Fail(w, r, log, errBadClientCert)
				return
			}
			if len(albCert) == 1 && albCert[0] != "" {
				// PathUnescape, not QueryUnescape: the ALB leaves '+' as is,
				// and turning it into a space would corrupt the base64.
				raw, err := url.PathUnescape(albCert[0])
				if err != nil {
					response.Fail(w, r, log, errBadClientCert)
					return
				}
				certPEM = raw
				if certPEM == "" {
					response.Fail(w, r, log, errBadClientCert)
					return
				}
			}
		default:
			response.Fail(w, r, log, errors.New("host: unknown gateway mode"))
			return
		}
		r.TLS = tlsState
		if certPEM != "" {
			chain, err := parseChain(certPEM)
			if err != nil {
				if mode == GatewayALB {
					response.Fail(w, r, log, errBadClientCert)
					return
				}
				log.Warn("the gateway passed a client certificate that does not parse", "err", err)
			} else {
				r = r.WithContext(authn.WithPeerCertificates(r.Context(), chain))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// LambdaHandler returns the function to pass to lambda.Start for a gateway
// mode: the adapter's ProxyWithContext, which keeps the event's request
// context in the Go context (where FromGateway reads it), never in headers.
func LambdaHandler(mode string, h http.Handler) any {
	switch mode {
	case GatewayREST:
		return httpadapter.New(h).ProxyWithContext
	case GatewayHTTP:
		return httpadapter.NewV2(h).ProxyWithContext
	case GatewayALB:
		return httpadapter.NewALB(h).ProxyWithContext
	}
	return nil
}

// Lazy starts the Host on first use and again after a failed start, so a
// function whose NATS cluster is unreachable at cold start answers 503 in
// the API's envelope and recovers on a later invocation.
type Lazy struct {
	cfg Config
	mu  sync.Mutex
	h   *Host
}

var errUnavailable = &response.Error{Status: http.StatusServiceUnavailable, Message: "Service unavailable: the event store cannot be reached"}

func (l *Lazy) host(ctx context.Context) (*Host, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil {
		return l.h, nil
	}
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	h, err := Start(ctx, l.cfg)
	if err != nil {
		l.cfg.Logger.Error("cold start failed", "err", err)
		return nil, errUnavailable
	}
	l.h = h
	return h, nil
}

func (l *Lazy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, err := l.host(r.Context())
	if err != nil {
		response.Fail(w, r, l.cfg.Logger, err)
		return
	}
	h.ServeHTTP(w, r)
}

// Close stops the Host, if it was started.
func (l *Lazy) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil {
		l.h.Close()
		l.h = nil
	}
}

// NewLazy returns an http.Handler that starts a Host for cfg on its first
// request (and retries after a failure).
func NewLazy(cfg Config) *Lazy {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Lazy{cfg: cfg}
}

// Main is the whole main of a function's Lambda: configuration from the
// environment, then lambda.Start with the adapter of the gateway mode.
func Main(functions ...string) {
	log := slog.Default()
	cfg, err := ConfigFromEnv(envGetter, functions...)
	if err != nil {
		log.Error("invalid configuration", "err", err)
		lambda.Start(func(context.Context) error { return err })
		return
	}
	cfg.Logger = log
	lambda.Start(LambdaHandler(cfg.Gateway, NewLazy(cfg)))
}

// SnapshotEvery is how many events past the stored snapshot the sweeper
// lets the stream move before it stores a new one.
const SnapshotEvery = 1000

// MainSweeper is the main of the scheduled function that expires tokens
// and keeps the read-model snapshot fresh.
func MainSweeper() {
	log := slog.Default()
	cfg, err := ConfigFromEnv(envGetter)
	if err != nil {
		log.Error("invalid configuration", "err", err)
		lambda.Start(func(context.Context) error { return err })
		return
	}
	cfg.Logger = log
	l := &Lazy{cfg: cfg}
	lambda.Start(func(ctx context.Context, _ events.CloudWatchEvent) error {
		h, err := l.host(ctx)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := h.Sweep(ctx)
		log.Info("token sweep", "expired", n, "err", err)
		if err != nil {
			return err
		}
		// The sweeper also keeps the snapshot cold starts begin from.
		saved, err := h.SaveSnapshot(ctx, SnapshotEvery)
		log.Info("snapshot", "saved", saved, "err", err)
		return err
	})
}
