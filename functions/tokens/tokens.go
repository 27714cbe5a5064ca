// Package tokens issues, redeems, revokes and expires trust tokens, and
// serves them as LXD/Incus operations of class "token" under
// /1.0/operations so that stock clients can list and revoke them.
//
// A token is redeemed exactly once because redemption is a conditional
// append: the decision that the token is pending and the events that consume
// it are written at one stream sequence or not at all.
package tokens

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/certificates"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/functions/sealing"
	"github.com/trustlog/trustlog/projections"
)

// Configuration keys read by this package.
const (
	// KeyExpiry is the lifetime of new tokens (grammar of ParseExpiry).
	KeyExpiry = "core.remote_token_expiry"
	// KeyAdvertise lists, comma-separated, the host:port addresses put in
	// tokens instead of the listen addresses (for servers behind NAT).
	KeyAdvertise = "core.https_advertise_addresses"
)

// Host is what the tokens need to know about the serving host.
type Host interface {
	// Certificate returns the served certificate's PEM and fingerprint.
	Certificate() (pemText, fingerprint string)
	// Addresses returns the host:port addresses the API listens on.
	Addresses() []string
	// ServerName returns the server's name (the operation location).
	ServerName() string
}

// Config holds a Handler's dependencies; every field is required but Log.
type Config struct {
	Model     commit.ReadModel
	Committer *commit.Committer
	Host      Host
	// Box seals token secrets under the service key; nil (a host started
	// without the key) refuses to issue tokens and lists them without
	// their secrets.
	Box *sealing.Box
	// Now is the clock; Random the source of secrets; NewID of operation ids.
	Now    func() time.Time
	Random io.Reader
	NewID  func() string
	Log    *slog.Logger
}

// ErrNoSealingKey refuses to issue a token on a host without the service key.
var ErrNoSealingKey = &response.Error{Status: http.StatusServiceUnavailable, Message: "Trust tokens cannot be issued here: this host has no sealing key"}

// Handler issues and redeems tokens and serves /1.0/operations.
type Handler struct{ cfg Config }

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Handler{cfg: cfg}
}

// Routes returns the operations routes.
func (h *Handler) Routes() []gate.Route {
	return []gate.Route{
		{Method: "GET", Path: "/1.0/operations", Handler: http.HandlerFunc(h.list)},
		{Method: "GET", Path: "/1.0/operations/{id}", Handler: http.HandlerFunc(h.get)},
		{Method: "DELETE", Path: "/1.0/operations/{id}", Admin: true, Handler: http.HandlerFunc(h.cancel)},
	}
}

// ValidateExpiry checks a value of core.remote_token_expiry.
func ValidateExpiry(v string) error {
	_, err := ParseExpiry(v, time.Unix(0, 0))
	return err
}

// Issue creates a token for req (an admin's POST /1.0/certificates with
// "token": true) and returns its operation, secret included.
func (h *Handler) Issue(ctx context.Context, actor events.Actor, req api.CertificatesPost) (api.Operation, error) {
	if req.Name == "" {
		return api.Operation{}, response.BadRequest("Client name must not be empty")
	}
	id := h.cfg.NewID()
	sec, err := h.newSecret(id)
	if err != nil {
		return api.Operation{}, err
	}
	m, err := h.cfg.Committer.Do(ctx, actor, func(m *projections.Model) ([]events.Payload, error) {
		ev, err := h.issued(m, id, sec)
		if err != nil {
			return nil, err
		}
		ev.Name, ev.Restricted, ev.Projects, ev.Description = req.Name, req.Restricted, nonNil(req.Projects), req.Description
		return []events.Payload{ev}, nil
	})
	if err != nil {
		return api.Operation{}, err
	}
	t, ok := m.Token(id)
	if !ok {
		return api.Operation{}, fmt.Errorf("tokens: issued token %s not in the read model", id)
	}
	return h.operation(t, true), nil
}

// secret is a new token secret: its text, SHA-256 and sealed form.
type secret struct {
	text   string
	sum    [32]byte
	sealed string
}

// newSecret draws a 32-byte secret for token id and seals it.
func (h *Handler) newSecret(id string) (secret, error) {
	if h.cfg.Box == nil {
		return secret{}, ErrNoSealingKey
	}
	var raw [32]byte
	if _, err := io.ReadFull(h.cfg.Random, raw[:]); err != nil {
		return secret{}, fmt.Errorf("tokens: secret: %w", err)
	}
	text := hex.EncodeToString(raw[:])
	sealed, err := h.cfg.Box.Seal([]byte(text), []byte(id))
	if err != nil {
		return secret{}, err
	}
	return secret{text: text, sum: sha256.Sum256([]byte(text)), sealed: sealed}, nil
}

// issued returns the TokenIssued of a client token id with sec, decided at
// m: the advertised addresses, the served fingerprint and the expiry of
// core.remote_token_expiry. The caller fills in what the token grants.
func (h *Handler) issued(m *projections.Model, id string, sec secret) (events.TokenIssued, error) {
	addrs := h.addresses(m)
	if len(addrs) == 0 {
		return events.TokenIssued{}, response.BadRequest("Can't issue token when server isn't listening on network")
	}
	expiry := m.ConfigValue(KeyExpiry)
	if expiry == "" {
		expiry = DefaultExpiry
	}
	expiresAt, err := ParseExpiry(expiry, h.cfg.Now())
	if err != nil {
		return events.TokenIssued{}, err
	}
	_, fp := h.cfg.Host.Certificate()
	return events.TokenIssued{
		ID: id, Type: events.CertificateTypeClient, Projects: []string{},
		SecretHash: hex.EncodeToString(sec.sum[:]), SealedSecret: sec.sealed,
		Fingerprint: fp, Addresses: addrs, ExpiresAt: expiresAt.UTC(),
	}, nil
}

// addresses returns the addresses a new token advertises.
func (h *Handler) addresses(m *projections.Model) []string {
	if v := m.ConfigValue(KeyAdvertise); v != "" {
		var out []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
		return out
	}
	return h.cfg.Host.Addresses()
}

// Redeem consumes the token named by token for certificate cert, which the
// caller has already checked (presence, validity dates, key strength), and
// trusts cert with the name and restrictions the issuer chose. It returns
// the new entry's fingerprint. A token that does not match any pending
// token, or has expired, is a 403; an expired one is burnt on the way.
func (h *Handler) Redeem(ctx context.Context, actor events.Actor, token string, cert *x509.Certificate) (string, error) {
	tok, err := api.DecodeCertificateAddToken(token)
	if err != nil {
		return "", response.ErrForbidden
	}
	certSum := projections.Fingerprint(cert.Raw)
	fp := hex.EncodeToString(certSum[:])
	pemText := certificates.EncodePEM(cert)
	expired := false
	_, err = h.cfg.Committer.Do(ctx, actor, func(m *projections.Model) ([]events.Payload, error) {
		t, burn, err := h.pendingFor(m, tok.Secret, cert, &expired)
		if err != nil || burn != nil {
			return burn, err
		}
		if t.IdentityID != "" {
			return nil, response.Forbidden("Failed during search for certificate add token operation: TLS Identity token detected (you must update your client)")
		}
		// A certificate another principal holds is refused by the committer (409),
		// without consuming the token.
		return []events.Payload{
			events.TokenRedeemed{ID: t.ID, Name: t.Name, Fingerprint: fp},
			events.CertificateTrusted{
				Fingerprint: fp, Name: t.Name, Type: t.Type, Restricted: t.Restricted,
				Projects: t.Projects, Description: t.Description, Certificate: pemText,
			},
		}, nil
	})
	if err != nil {
		return "", err
	}
	if expired {
		return "", response.Forbidden("Token has expired")
	}
	return fp, nil
}

// pendingFor finds the pending token of secret for redeeming with cert.
// It checks cert against PKI first (a certificate PKI mode could never
// trust does not consume a token). An expired token is returned as the
// events that burn it, with *expired set.
func (h *Handler) pendingFor(m *projections.Model, secret string, cert *x509.Certificate, expired *bool) (*projections.Token, []events.Payload, error) {
	*expired = false
	if err := pki.Check(m, cert); err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256([]byte(secret))
	t, ok := m.PendingToken(sum)
	if !ok || subtle.ConstantTimeCompare(t.SecretHash[:], sum[:]) != 1 {
		return nil, nil, response.Forbidden("No matching certificate add operation found")
	}
	if t.ExpiredAt(h.cfg.Now()) {
		*expired = true
		return nil, []events.Payload{events.TokenExpired{ID: t.ID, Name: t.Name}}, nil
	}
	return t, nil, nil
}

// Sweep expires every pending token whose expiry has passed at now, in
// batches, and returns how many it expired. Several instances may sweep at
// once: the conditional append lets each token expire once.
func (h *Handler) Sweep(ctx context.Context, now time.Time) (int, error) {
	const batch = 128
	total := 0
	for {
		n := 0
		_, err := h.cfg.Committer.Do(ctx, events.Actor{Name: "trustlogd", Method: "system"}, func(m *projections.Model) ([]events.Payload, error) {
			var out []events.Payload
			for _, t := range m.PendingTokens() {
				if t.ExpiredAt(now) {
					out = append(out, events.TokenExpired{ID: t.ID, Name: t.Name})
					if len(out) == batch {
						break
					}
				}
			}
			n = len(out)
			return out, nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// RunSweeper calls Sweep every interval until ctx ends; failures are logged.
func (h *Handler) RunSweeper(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n, err := h.Sweep(ctx, h.cfg.Now()); err != nil {
				h.cfg.Log.Warn("token sweep failed", "err", err)
			} else if n > 0 {
				h.cfg.Log.Info("expired trust tokens", "count", n)
			}
		}
	}
}
