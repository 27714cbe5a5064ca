// Package certificates serves the trust store: /1.0/certificates and
// /1.0/certificates/{fingerprint}, wire-compatible with LXD and Incus.
package certificates

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// Tokens issues and redeems trust tokens (package tokens implements it).
type Tokens interface {
	// Issue creates a token for an admin's request and returns its operation.
	Issue(ctx context.Context, actor events.Actor, req api.CertificatesPost) (api.Operation, error)
	// Redeem consumes token for a checked certificate and trusts it,
	// returning the new entry's fingerprint. Errors are *response.Error
	// values (403 for any token that does not work) or internal errors.
	Redeem(ctx context.Context, actor events.Actor, token string, cert *x509.Certificate) (string, error)
}

// Handler serves the trust store.
type Handler struct {
	model     commit.ReadModel
	committer *commit.Committer
	tokens    Tokens
	now       func() time.Time
	log       *slog.Logger
}

// New returns a Handler; now is the clock used to check certificate
// validity. tokens may be nil, which turns trust tokens off.
func New(model commit.ReadModel, c *commit.Committer, tokens Tokens, now func() time.Time, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Handler{model: model, committer: c, tokens: tokens, now: now, log: log}
}

// maxEntryBody caps the body of a trust-store write: a certificate in
// PEM or base64 (a few kilobytes), a name, projects, a token.
const maxEntryBody = 256 << 10

// Routes returns the routes of the handler.
func (h *Handler) Routes() []gate.Route {
	return []gate.Route{
		{Method: "GET", Path: "/1.0/certificates", Handler: http.HandlerFunc(h.list)},
		{Method: "POST", Path: "/1.0/certificates", Untrusted: true, MaxBody: maxEntryBody, Handler: http.HandlerFunc(h.create)},
		{Method: "GET", Path: "/1.0/certificates/{fingerprint}", Handler: http.HandlerFunc(h.get)},
		{Method: "PUT", Path: "/1.0/certificates/{fingerprint}", MaxBody: maxEntryBody, Handler: http.HandlerFunc(h.put)},
		{Method: "PATCH", Path: "/1.0/certificates/{fingerprint}", MaxBody: maxEntryBody, Handler: http.HandlerFunc(h.patch)},
		{Method: "DELETE", Path: "/1.0/certificates/{fingerprint}", Handler: http.HandlerFunc(h.delete)},
	}
}

// URL returns the API path of the entry with fingerprint fp.
func URL(fp string) string { return "/1.0/certificates/" + fp }

// ToAPI converts a trust-store entry to its wire form. The result shares
// nothing with the entry: PATCH decodes the request body into it, and the
// read model's snapshots are immutable.
func ToAPI(c *projections.Certificate) api.Certificate {
	return api.Certificate{
		Name:        c.Name,
		Type:        c.Type,
		Restricted:  c.Restricted,
		Projects:    append([]string{}, c.Projects...),
		Certificate: c.PEM,
		Description: c.Description,
		Fingerprint: c.Fingerprint,
	}
}

// visible reports whether id may see entry c: admins see every entry, a
// restricted client only its own (LXD semantics).
func visible(id authn.Identity, c *projections.Certificate) bool {
	return id.Admin() || id.Fingerprint == c.Fingerprint
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	all := h.model.Snapshot().Certificates()
	all = slices.DeleteFunc(all, func(c *projections.Certificate) bool { return !visible(id, c) })
	if rec := r.URL.Query().Get("recursion"); rec == "1" || rec == "2" {
		out := make([]api.Certificate, len(all))
		for i, c := range all {
			out[i] = ToAPI(c)
		}
		response.Sync(w, out)
		return
	}
	out := make([]string, len(all))
	for i, c := range all {
		out[i] = URL(c.Fingerprint)
	}
	response.Sync(w, out)
}

// lookup finds the single entry matching a fingerprint prefix.
func lookup(m *projections.Model, prefix string) (*projections.Certificate, error) {
	if prefix == "" || strings.Trim(strings.ToLower(prefix), "0123456789abcdef") != "" {
		return nil, response.NotFound("Certificate not found")
	}
	found := m.CertificatesByPrefix(prefix)
	switch len(found) {
	case 0:
		return nil, response.NotFound("Certificate not found")
	case 1:
		return found[0], nil
	default:
		return nil, response.BadRequest("More than one certificate matches")
	}
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	c, err := lookup(h.model.Snapshot(), r.PathValue("fingerprint"))
	if err == nil && !visible(id, c) {
		err = response.ErrForbidden
	}
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	obj := ToAPI(c)
	response.SyncETag(w, obj, obj)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	var req api.CertificatesPost
	if err := response.DecodeJSON(w, r, &req); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	if req.Token {
		op, err := h.issue(r, id, req)
		if err != nil {
			response.Fail(w, r, h.log, err)
			return
		}
		response.Async(w, op)
		return
	}
	loc, err := h.add(r, id, req)
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.Created(w, loc)
}

// issue runs POST /1.0/certificates with "token": true.
func (h *Handler) issue(r *http.Request, id authn.Identity, req api.CertificatesPost) (api.Operation, error) {
	if err := checkName(req.Name); err != nil {
		return api.Operation{}, err
	}
	if len(req.Projects) > 0 && !req.Restricted {
		return api.Operation{}, errProjectsUnrestricted
	}
	if req.Certificate != "" {
		return api.Operation{}, response.BadRequest("Can't use certificate if token is requested")
	}
	if req.Type != "" && req.Type != events.CertificateTypeClient {
		return api.Operation{}, response.BadRequest("Tokens can only be issued for client certificates")
	}
	if !id.Admin() {
		return api.Operation{}, response.ErrForbidden
	}
	if h.tokens == nil {
		return api.Operation{}, &response.Error{Status: http.StatusNotImplemented, Message: "Trust tokens are not available"}
	}
	return h.tokens.Issue(r.Context(), id.Actor(), req)
}

// redeem trusts the caller's certificate with a trust token. The
// certificate is checked before the token is looked up, so a bad
// certificate does not burn the token.
func (h *Handler) redeem(r *http.Request, id authn.Identity, token string) (string, error) {
	if h.tokens == nil {
		return "", response.Forbidden("No matching certificate add operation found")
	}
	cert := id.PeerCertificate
	if cert == nil {
		if r.TLS == nil && len(authn.PeerCertificates(r)) == 0 {
			return "", response.BadRequest("Can't use TLS data on non-TLS link")
		}
		return "", response.BadRequest("No client certificate provided")
	}
	if err := CheckValidity(cert, h.now()); err != nil {
		return "", err
	}
	fp, err := h.tokens.Redeem(r.Context(), id.Actor(), token, cert)
	if err != nil {
		return "", err
	}
	return URL(fp), nil
}

// add runs POST /1.0/certificates and returns the new entry's URL.
func (h *Handler) add(r *http.Request, id authn.Identity, req api.CertificatesPost) (string, error) {
	if req.Password != "" {
		return "", &response.Error{Status: http.StatusNotImplemented, Message: "Password authentication is no longer supported, please update your client"}
	}
	if id.Trusted && req.Certificate == "" {
		return "", response.BadRequest("Client is already trusted")
	}
	if !id.Admin() {
		// Only a trust token lets an untrusted or restricted caller in. The
		// issuer's request replaces the caller's, so the caller's name,
		// restriction and projects are neither used nor checked.
		if req.TrustToken == "" {
			return "", response.ErrForbidden
		}
		return h.redeem(r, id, req.TrustToken)
	}
	if err := checkName(req.Name); err != nil {
		return "", err
	}
	if len(req.Projects) > 0 && !req.Restricted {
		return "", errProjectsUnrestricted
	}
	typ := req.Type
	if typ == "" {
		typ = events.CertificateTypeClient
	}
	if !validType(typ) {
		return "", response.BadRequest("Invalid certificate type")
	}
	cert, err := ParseCertificate(req.Certificate)
	if err != nil {
		return "", err
	}
	if err := CheckValidity(cert, h.now()); err != nil {
		return "", err
	}
	sum := projections.Fingerprint(cert.Raw)
	fp := hex.EncodeToString(sum[:])
	name := req.Name
	if name == "" && NameProblem(cert.Subject.CommonName) == "" {
		name = cert.Subject.CommonName // a common name that is no valid name is passed over
	}
	if name == "" && id.Method == authn.MethodUnix {
		name = id.Name // the local user; a unix socket has no client address
	}
	if name == "" {
		name = id.Address
	}
	_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		if typ != events.CertificateTypeServer {
			if err := pki.Check(m, cert); err != nil {
				return nil, err
			}
		}
		// A certificate another principal holds is refused by the committer (409).
		return []events.Payload{events.CertificateTrusted{
			Fingerprint: fp,
			Name:        name,
			Type:        typ,
			Restricted:  req.Restricted,
			Projects:    nonNil(req.Projects),
			Description: req.Description,
			Certificate: EncodePEM(cert),
		}}, nil
	})
	if err != nil {
		return "", err
	}
	return URL(fp), nil
}
