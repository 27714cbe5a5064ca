// Package acme obtains the served certificate from an ACME CA (Let's
// Encrypt, or any RFC 8555 server) with go-acme/lego, answering HTTP-01
// challenges from the event log: a challenge answer is an event, so every
// instance serves GET /.well-known/acme-challenge/<token>, whichever one
// the CA's validation reaches (on the HTTPS listener or on acme.http.port).
package acme

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// Configuration keys (Incus's names).
const (
	KeyDomain    = "acme.domain"
	KeyEmail     = "acme.email"
	KeyAgreeTOS  = "acme.agree_tos"
	KeyCAURL     = "acme.ca_url"
	KeyHTTPPort  = "acme.http.port"
	KeyChallenge = "acme.challenge"
	// KeyEABKID and KeyEABHMAC are the CA's external account binding
	// (required by some CAs); the HMAC key is sealed in the log.
	KeyEABKID  = "acme.eab.kid"
	KeyEABHMAC = "acme.eab.hmac"
)

// DefaultCAURL is Let's Encrypt's production directory.
const DefaultCAURL = lego.LEDirectoryProduction

// Settings are the acme.* keys of a model.
type Settings struct {
	Domains  []string
	Email    string
	AgreeTOS bool
	CAURL    string
	HTTPPort string
	// EABKID and EABHMAC bind the account to one at the CA; EABHMAC is the
	// plain key (the host unseals it from the configuration).
	EABKID, EABHMAC string
}

// SettingsOf reads the acme.* keys of m.
func SettingsOf(m *projections.Model) Settings {
	s := Settings{Email: m.ConfigValue(KeyEmail), CAURL: m.ConfigValue(KeyCAURL), HTTPPort: m.ConfigValue(KeyHTTPPort),
		EABKID: m.ConfigValue(KeyEABKID), EABHMAC: m.ConfigValue(KeyEABHMAC)}
	for _, d := range strings.Split(m.ConfigValue(KeyDomain), ",") {
		if d = strings.TrimSpace(d); d != "" {
			s.Domains = append(s.Domains, d)
		}
	}
	s.AgreeTOS, _ = strconv.ParseBool(m.ConfigValue(KeyAgreeTOS))
	if s.CAURL == "" {
		s.CAURL = DefaultCAURL
	}
	return s
}

// Enabled reports whether a domain is configured.
func (s Settings) Enabled() bool { return len(s.Domains) > 0 }

// Check reports what stops issuance: no domain, terms not agreed.
func (s Settings) Check() error {
	switch {
	case !s.Enabled():
		return fmt.Errorf("%s is not set", KeyDomain)
	case !s.AgreeTOS:
		return fmt.Errorf("%s must be true: the CA's terms of service have to be agreed to", KeyAgreeTOS)
	}
	return nil
}

// Validators of the acme.* keys, for serverinfo.
var Validators = map[string]func(string) error{
	KeyDomain: func(v string) error {
		for _, d := range strings.Split(v, ",") {
			d = strings.TrimSpace(d)
			if d == "" || net.ParseIP(d) != nil || !api.ValidHostname(d) {
				return fmt.Errorf("%q is not a domain name (ACME certificates are for DNS names)", d)
			}
		}
		return nil
	},
	KeyEmail: func(v string) error {
		if _, err := mail.ParseAddress(v); err != nil {
			return fmt.Errorf("%q is not an email address", v)
		}
		return nil
	},
	KeyAgreeTOS: func(v string) error {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("%q is not a boolean", v)
		}
		return nil
	},
	KeyCAURL: func(v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%q is not an ACME directory URL", v)
		}
		return nil
	},
	KeyHTTPPort: func(v string) error {
		_, err := ListenAddress(v)
		return err
	},
	KeyEABKID: func(v string) error {
		if strings.ContainsAny(v, " \t\n") {
			return fmt.Errorf("%q must not contain spaces", v)
		}
		return nil
	},
	KeyEABHMAC: func(v string) error {
		if _, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "=")); err != nil {
			return errors.New("the HMAC key must be base64url, as the CA gives it")
		}
		return nil
	},
	KeyChallenge: func(v string) error {
		if v != "HTTP-01" {
			return fmt.Errorf("%q is not supported: only HTTP-01 is", v)
		}
		return nil
	},
}

// ListenAddress turns an acme.http.port value (":80", "80", "host:port")
// into a listen address.
func ListenAddress(v string) (string, error) {
	if n, err := strconv.Atoi(v); err == nil {
		v = ":" + strconv.Itoa(n)
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q is not a port or host:port", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q has no valid port", v)
	}
	return v, nil
}

// ReadModel is the read side the challenge handler answers from.
type ReadModel interface {
	Snapshot() *projections.Model
}

// Handler serves ACME HTTP-01 challenge answers.
type Handler struct {
	model ReadModel
	// sync, if set, catches the model up with the stream (bounded by its
	// context): an answer another instance just recorded may not be here yet.
	sync func(context.Context) error
	log  *slog.Logger
}

// NewHandler returns a Handler; sync (optional) catches the model up.
func NewHandler(model ReadModel, sync func(context.Context) error, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{model: model, sync: sync, log: log}
}

// ChallengePath is where the CA fetches an HTTP-01 answer.
const ChallengePath = "/.well-known/acme-challenge/{token}"

// Routes returns the challenge route for the API's gate (no
// authentication: the CA is anonymous) and, when renew is set, the admin's
// POST /1.0/trustlog/acme/renew that obtains a certificate now.
func (h *Handler) Routes(renew func(context.Context) error) []gate.Route {
	routes := []gate.Route{{Method: "GET", Path: ChallengePath, Untrusted: true, Handler: http.HandlerFunc(h.ServeChallenge)}}
	if renew != nil {
		routes = append(routes, gate.Route{Method: "POST", Path: "/1.0/trustlog/acme/renew", Admin: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !authn.FromContext(r.Context()).Admin() {
				response.Fail(w, r, h.log, response.ErrForbidden)
				return
			}
			if err := renew(r.Context()); err != nil {
				var answer *response.Error // the request's own fault: ACME is not configured, say
				if !errors.As(err, &answer) {
					err = &response.Error{Status: http.StatusBadGateway, Message: "ACME: " + err.Error()}
				}
				response.Fail(w, r, h.log, err)
				return
			}
			response.EmptySync(w)
		})})
	}
	return routes
}

// ServeChallenge answers GET /.well-known/acme-challenge/{token}.
func (h *Handler) ServeChallenge(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if token == "" {
		token = strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	}
	keyAuth, ok := h.model.Snapshot().ACMEKeyAuth(token)
	if !ok && h.sync != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		if h.sync(ctx) == nil {
			keyAuth, ok = h.model.Snapshot().ACMEKeyAuth(token)
		}
		cancel()
	}
	if !ok {
		response.Fail(w, r, h.log, response.NotFound("No such ACME challenge"))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(keyAuth))
}

// ChallengeServer is the plain-HTTP handler of acme.http.port: the
// challenge path and nothing else.
func (h *Handler) ChallengeServer() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ChallengePath, h.ServeChallenge)
	return mux
}

// Provider is lego's HTTP-01 provider: it records each challenge answer
// as an event (and its end), so that every instance serves it.
type Provider struct {
	Committer *commit.Committer
	Actor     events.Actor
}

// Present implements challenge.Provider.
func (p *Provider) Present(domain, token, keyAuth string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := p.Committer.Do(ctx, p.Actor, func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{events.ACMEChallengePresented{Domain: domain, Token: token, KeyAuth: keyAuth}}, nil
	})
	return err
}

// CleanUp implements challenge.Provider.
func (p *Provider) CleanUp(domain, token, _ string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := p.Committer.Do(ctx, p.Actor, func(m *projections.Model) ([]events.Payload, error) {
		if _, ok := m.ACMEKeyAuth(token); !ok {
			return nil, nil
		}
		return []events.Payload{events.ACMEChallengeCleaned{Domain: domain, Token: token}}, nil
	})
	return err
}

var _ challenge.Provider = (*Provider)(nil)

// user is the ACME account.
type user struct {
	email string
	key   crypto.PrivateKey
	reg   *registration.Resource
}

func (u *user) GetEmail() string                        { return u.email }
func (u *user) GetRegistration() *registration.Resource { return u.reg }
func (u *user) GetPrivateKey() crypto.PrivateKey        { return u.key }

// Issued is an obtained certificate.
type Issued struct {
	// ChainPEM is the leaf then the issuer chain; KeyPEM the leaf's key
	// (it stays with the host: never in an event or a log).
	ChainPEM, KeyPEM []byte
	Leaf             *x509.Certificate
}

// Obtain registers the account (terms agreed) and obtains a certificate
// for s.Domains with an ECDSA P-384 key, answering HTTP-01 through p.
// client reaches the CA (nil: lego's default, which honours
// LEGO_CA_CERTIFICATES).
func Obtain(ctx context.Context, s Settings, accountKey crypto.PrivateKey, client *http.Client, p challenge.Provider) (Issued, error) {
	if err := s.Check(); err != nil {
		return Issued{}, err
	}
	u := &user{email: s.Email, key: accountKey}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = s.CAURL
	cfg.Certificate.KeyType = certcrypto.EC384
	if client != nil {
		cfg.HTTPClient = client
	}
	type result struct {
		issued Issued
		err    error
	}
	done := make(chan result, 1)
	go func() { // lego has no context: bound it from outside
		issued, err := obtain(cfg, u, s, p)
		done <- result{issued, err}
	}()
	select {
	case r := <-done:
		return r.issued, r.err
	case <-ctx.Done():
		return Issued{}, fmt.Errorf("acme: %w", ctx.Err())
	}
}

func obtain(cfg *lego.Config, u *user, s Settings, p challenge.Provider) (Issued, error) {
	client, err := lego.NewClient(cfg)
	if err != nil {
		return Issued{}, fmt.Errorf("acme: CA at %s: %w", s.CAURL, err)
	}
	if err := client.Challenge.SetHTTP01Provider(p); err != nil {
		return Issued{}, err
	}
	if s.EABKID != "" {
		u.reg, err = client.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
			TermsOfServiceAgreed: true, Kid: s.EABKID, HmacEncoded: s.EABHMAC})
	} else {
		u.reg, err = client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	if err != nil {
		return Issued{}, fmt.Errorf("acme: account: %w", err)
	}
	res, err := client.Certificate.Obtain(certificate.ObtainRequest{Domains: s.Domains, Bundle: true})
	if err != nil {
		return Issued{}, fmt.Errorf("acme: obtain %s: %w", strings.Join(s.Domains, ","), err)
	}
	block, _ := pem.Decode(res.Certificate)
	if block == nil {
		return Issued{}, errors.New("acme: the CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return Issued{}, fmt.Errorf("acme: certificate: %w", err)
	}
	return Issued{ChainPEM: res.Certificate, KeyPEM: res.PrivateKey, Leaf: leaf}, nil
}

// RenewalSuggested asks the CA's renewal information (ARI, RFC 9773)
// whether leaf should be renewed at now: true once the CA's suggested
// window has started (for example after a revocation or a mass re-issue).
// A CA without ARI, or any error, says no.
func RenewalSuggested(ctx context.Context, s Settings, accountKey crypto.PrivateKey, client *http.Client, leaf *x509.Certificate, now time.Time) bool {
	cfg := lego.NewConfig(&user{email: s.Email, key: accountKey})
	cfg.CADirURL = s.CAURL
	if client != nil {
		cfg.HTTPClient = client
	}
	done := make(chan bool, 1)
	go func() {
		c, err := lego.NewClient(cfg)
		if err != nil {
			done <- false
			return
		}
		info, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
		done <- err == nil && info.ShouldRenewAt(now, 0) != nil
	}()
	select {
	case due := <-done:
		return due
	case <-ctx.Done():
		return false
	}
}
