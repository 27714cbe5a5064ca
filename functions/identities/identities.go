// Package identities serves /1.0/auth/identities: the OIDC users and TLS
// identities the server knows, what each may do, and the caller's own view
// (current). It also records an OIDC user on their first authenticated
// request (the gate calls Record).
//
// Access follows one grant model: an identity without a grant gets the
// default (oidc.default_access for OIDC users, "none" unless set to
// "admin"; nothing for TLS identities), and an administrator grants
// "admin", "restricted" with projects, or "none".
package identities

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// Identity types, as LXD names them.
const (
	TypeOIDC        = "OIDC client"
	TypeOIDCPending = "OIDC client (pending)"
	TypeTLS         = "Client certificate"
	TypeTLSPending  = "Client certificate (pending)"
)

// Tokens issues and redeems the tokens of pending TLS identities (package
// tokens implements it).
type Tokens interface {
	IssueIdentity(ctx context.Context, actor events.Actor, name, access string, projects []string) (api.CertificateAddToken, error)
	RedeemIdentity(ctx context.Context, actor events.Actor, token string, cert *x509.Certificate) (string, error)
}

// Handler serves the identities API.
type Handler struct {
	model     commit.ReadModel
	committer *commit.Committer
	tokens    Tokens
	now       func() time.Time
	log       *slog.Logger
}

// New returns a Handler.
func New(model commit.ReadModel, c *commit.Committer, tokens Tokens, now func() time.Time, log *slog.Logger) *Handler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{model: model, committer: c, tokens: tokens, now: now, log: log}
}

// maxIdentityBody caps the body of an identity write: a name, a grant, a
// token or a certificate.
const maxIdentityBody = 256 << 10

// Routes returns the routes of the handler.
func (h *Handler) Routes() []gate.Route {
	return []gate.Route{
		{Method: "GET", Path: "/1.0/auth/identities", Handler: http.HandlerFunc(h.list)},
		{Method: "GET", Path: "/1.0/auth/identities/current", Ungranted: true, Handler: http.HandlerFunc(h.current)},
		{Method: "GET", Path: "/1.0/auth/identities/{method}", Handler: http.HandlerFunc(h.list)},
		{Method: "POST", Path: "/1.0/auth/identities/tls", Untrusted: true, MaxBody: maxIdentityBody, Handler: http.HandlerFunc(h.createTLS)},
		{Method: "POST", Path: "/1.0/auth/identities/oidc", Admin: true, MaxBody: maxIdentityBody, Handler: http.HandlerFunc(h.createOIDC)},
		{Method: "GET", Path: "/1.0/auth/identities/{method}/{id}", Handler: http.HandlerFunc(h.get)},
		{Method: "PUT", Path: "/1.0/auth/identities/{method}/{id}", Admin: true, MaxBody: maxIdentityBody, Handler: http.HandlerFunc(h.grant)},
		{Method: "PATCH", Path: "/1.0/auth/identities/{method}/{id}", Admin: true, MaxBody: maxIdentityBody, Handler: http.HandlerFunc(h.grant)},
		{Method: "DELETE", Path: "/1.0/auth/identities/{method}/{id}", Admin: true, Handler: http.HandlerFunc(h.remove)},
	}
}

// Record implements gate.Recorder: it records the identity of an OIDC user
// the model does not know yet. Concurrent first requests of one user
// record it once: the id is derived from issuer and subject, and the
// decision sees the other writes. An identity an administrator created
// ahead of time under the user's name is replaced by the recorded one,
// which inherits its grant.
func (h *Handler) Record(ctx context.Context, id authn.Identity) (authn.Identity, error) {
	iid := projections.OIDCIdentityID(id.Issuer, id.Subject)
	m, err := h.committer.Do(ctx, id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		if _, ok := m.Identity(iid); ok {
			return nil, nil
		}
		created := events.IdentityCreated{ID: iid, AuthMethod: events.IdentityOIDC, Name: id.Name, Issuer: id.Issuer, Subject: id.Subject}
		for _, pre := range m.Identities() {
			if pre.AuthMethod == events.IdentityOIDC && pre.Pending && pre.Name == id.Name {
				created.Access, created.Projects = pre.Access, pre.Projects
				return []events.Payload{created, events.IdentityRemoved{ID: pre.ID, Name: pre.Name}}, nil
			}
		}
		return []events.Payload{created}, nil
	})
	if err != nil {
		return id, err
	}
	id.IdentityID = iid
	ident, _ := m.Identity(iid)
	return authn.WithGrant(m, id, ident), nil
}

// createOIDC records an OIDC identity ahead of the user's first login, by
// the user name the server will derive (oidc.claim, email or sub), with an
// initial grant.
func (h *Handler) createOIDC(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	if !id.Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	var req api.IdentitiesTLSPost
	if err := response.DecodeJSON(w, r, &req); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	err := func() error {
		switch {
		case req.Name == "":
			return response.BadRequest("Identity name must not be empty")
		case req.Token || req.TrustToken != "" || req.Certificate != "":
			return response.BadRequest("OIDC identities take a name and an access grant only")
		case len(req.Groups) > 0:
			return response.BadRequest("Trustlog has no identity groups: give the identity \"access\" (admin, restricted with projects, none)")
		case req.Access == "" && len(req.Projects) > 0:
			return response.BadRequest(fmt.Sprintf("Projects only apply to %q access", events.AccessRestricted))
		case req.Access != "":
			return checkGrant(api.IdentityPut{Access: req.Access, Projects: req.Projects})
		}
		return nil
	}()
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	newID := uuid.NewString()
	_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		for _, i := range m.Identities() {
			if i.AuthMethod == events.IdentityOIDC && i.Name == req.Name {
				return nil, response.Conflict(fmt.Sprintf("An OIDC identity named %q already exists", req.Name))
			}
		}
		return []events.Payload{events.IdentityCreated{ID: newID, AuthMethod: events.IdentityOIDC, Name: req.Name, Access: req.Access, Projects: nonNil(req.Projects)}}, nil
	})
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.Created(w, "/1.0/auth/identities/oidc/"+newID)
}

// URL returns the API path of an identity.
func URL(i *projections.Identity) string {
	return "/1.0/auth/identities/" + i.AuthMethod + "/" + i.ID
}

// render turns a model identity into its API object, with the access it
// has under the configuration of m.
func render(m *projections.Model, i *projections.Identity) api.Identity {
	// The same access authn gives the identity: its grant, else the default.
	g := authn.WithGrant(m, authn.Identity{Method: i.AuthMethod}, i)
	out := api.Identity{
		AuthenticationMethod: i.AuthMethod, ID: i.ID, Name: i.Name, Groups: []string{},
		Access: g.Access, AccessSource: g.AccessSource, Projects: []string{},
		Issuer: i.Issuer, Subject: i.Subject, TLSCertificate: i.PEM,
	}
	switch {
	case i.AuthMethod == events.IdentityOIDC && i.Pending:
		out.Type = TypeOIDCPending
	case i.AuthMethod == events.IdentityOIDC:
		out.Type = TypeOIDC
	case i.Pending:
		out.Type = TypeTLSPending
	default:
		out.Type = TypeTLS
	}
	if g.Access == events.AccessRestricted {
		out.Projects = nonNil(g.Projects)
	}
	return out
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	if !id.Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	method := r.PathValue("method")
	if method != "" && method != events.IdentityOIDC && method != events.IdentityTLS {
		response.Fail(w, r, h.log, response.NotFound(fmt.Sprintf("Unknown authentication method %q", method)))
		return
	}
	m := h.model.Snapshot()
	var all []*projections.Identity
	for _, i := range m.Identities() {
		if method == "" || i.AuthMethod == method {
			all = append(all, i)
		}
	}
	if rec := r.URL.Query().Get("recursion"); rec == "1" || rec == "2" {
		out := make([]api.Identity, 0, len(all))
		for _, i := range all {
			out = append(out, render(m, i))
		}
		response.Sync(w, out)
		return
	}
	urls := make([]string, 0, len(all))
	for _, i := range all {
		urls = append(urls, URL(i))
	}
	response.Sync(w, urls)
}

// find returns the identity of method named by ref: its id, or its name
// when that is unique.
func find(m *projections.Model, method, ref string) (*projections.Identity, error) {
	if i, ok := m.Identity(ref); ok && i.AuthMethod == method {
		return i, nil
	}
	var found []*projections.Identity
	for _, i := range m.Identities() {
		if i.AuthMethod == method && i.Name == ref {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 0:
		return nil, response.NotFound("Identity not found")
	case 1:
		return found[0], nil
	}
	return nil, response.BadRequest(fmt.Sprintf("%d identities are named %q: use the identity id", len(found), ref))
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	m := h.model.Snapshot()
	i, err := find(m, r.PathValue("method"), r.PathValue("id"))
	if err == nil && !id.Admin() && i.ID != id.IdentityID {
		err = response.ErrNotFound
	}
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.SyncETag(w, render(m, i), grantOf(i))
}

func grantOf(i *projections.Identity) api.IdentityPut {
	return api.IdentityPut{Access: i.Access, Projects: nonNil(i.Projects)}
}

// grant records an administrator's grant. PUT and PATCH both replace the
// grant; a request that changes nothing records nothing.
func (h *Handler) grant(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	if !id.Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	var req api.IdentityPut
	if err := response.DecodeJSON(w, r, &req); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	if err := checkGrant(req); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	method, ref := r.PathValue("method"), r.PathValue("id")
	_, err := h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		i, err := find(m, method, ref)
		if err != nil {
			return nil, err
		}
		if err := response.CheckETag(r, grantOf(i)); err != nil {
			return nil, err
		}
		projects := nonNil(req.Projects)
		if i.Access == req.Access && slices.Equal(nonNil(i.Projects), projects) {
			return nil, nil
		}
		return []events.Payload{events.IdentityGranted{ID: i.ID, Name: i.Name, Access: req.Access, Projects: projects}}, nil
	})
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.EmptySync(w)
}

// checkGrant validates a grant request.
func checkGrant(req api.IdentityPut) error {
	if len(req.Groups) > 0 {
		return response.BadRequest("Trustlog has no identity groups: grant access with \"access\" (admin, restricted with projects, none)")
	}
	switch req.Access {
	case events.AccessAdmin, events.AccessNone:
		if len(req.Projects) > 0 {
			return response.BadRequest(fmt.Sprintf("Projects only apply to %q access", events.AccessRestricted))
		}
	case events.AccessRestricted:
		if len(req.Projects) == 0 {
			return response.BadRequest("Restricted access needs at least one project")
		}
		for _, p := range req.Projects {
			if p == "" || strings.ContainsAny(p, " \t\n/") {
				return response.BadRequest(fmt.Sprintf("Invalid project name %q", p))
			}
		}
	default:
		return response.BadRequest(fmt.Sprintf("Invalid access %q: must be %q, %q or %q", req.Access, events.AccessAdmin, events.AccessRestricted, events.AccessNone))
	}
	return nil
}

func (h *Handler) remove(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	if !id.Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	method, ref := r.PathValue("method"), r.PathValue("id")
	_, err := h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		i, err := find(m, method, ref)
		if err != nil {
			return nil, err
		}
		out := []events.Payload{events.IdentityRemoved{ID: i.ID, Name: i.Name}}
		if t, ok := m.Token(i.TokenID); ok && i.Pending && t.Pending() {
			out = append([]events.Payload{events.TokenRevoked{ID: t.ID, Name: t.Name}}, out...)
		}
		return out, nil
	})
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.EmptySync(w)
}

// current returns the caller as the server sees it, with an explanation.
func (h *Handler) current(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	m := h.model.Snapshot()
	info := api.IdentityInfo{
		Method: id.Method, EffectiveGroups: []string{}, EffectivePermissions: []any{},
		Explanation: Explain(m, id, h.now()),
	}
	if i, ok := m.Identity(id.IdentityID); ok && id.IdentityID != "" {
		info.Identity, info.Recorded = render(m, i), true
		info.Access, info.AccessSource = id.Access, id.AccessSource
		if id.Access == events.AccessRestricted {
			info.Projects = nonNil(id.Projects)
		}
	} else {
		info.Identity = api.Identity{
			AuthenticationMethod: id.Method, ID: id.Name, Name: id.Name, Groups: []string{},
			Projects: nonNil(id.Projects), Issuer: id.Issuer, Subject: id.Subject,
			Access: accessOf(id), AccessSource: id.AccessSource,
		}
		if id.CertificateName != "" {
			info.Name = id.CertificateName
			info.Type = TypeTLS
		}
		if id.PeerCertificate != nil && id.Method != authn.MethodUnix {
			info.TLSCertificate = pemOf(id.PeerCertificate.Raw)
		}
	}
	response.Sync(w, info)
}

// accessOf summarises a caller's access as an identity access level.
func accessOf(id authn.Identity) string {
	switch {
	case id.Access != "":
		return id.Access
	case id.Admin():
		return events.AccessAdmin
	case id.Restricted:
		return events.AccessRestricted
	}
	return events.AccessNone
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
