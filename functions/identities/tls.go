package identities

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/certificates"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// createTLS serves POST /1.0/auth/identities/tls (LXD's fine-grained TLS
// identities). An untrusted caller activates a pending identity with its
// trust token and its TLS client certificate; an admin creates a pending
// identity and gets its token, or adds a certificate as an identity.
func (h *Handler) createTLS(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	var req api.IdentitiesTLSPost
	if err := response.DecodeJSON(w, r, &req); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	if !id.Trusted {
		if err := h.redeemTLS(w, r, id, req); err != nil {
			response.Fail(w, r, h.log, err)
		}
		return
	}
	if !id.Admin() {
		response.Fail(w, r, h.log, response.ErrForbidden)
		return
	}
	if err := checkNew(req); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	if req.Token {
		tok, err := h.tokens.IssueIdentity(r.Context(), id.Actor(), req.Name, req.Access, nonNil(req.Projects))
		if err != nil {
			response.Fail(w, r, h.log, err)
			return
		}
		response.CreatedWith(w, "/1.0/auth/identities/tls/"+req.Name, tok)
		return
	}
	cert, err := certificates.ParseCertificate(req.Certificate)
	if err == nil {
		err = certificates.CheckValidity(cert, h.now())
	}
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	sum := projections.Fingerprint(cert.Raw)
	fp := fmt.Sprintf("%x", sum)
	var identityID string
	_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		if err := pki.Check(m, cert); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(m.Identities(), func(i *projections.Identity) bool {
			return i.AuthMethod == events.IdentityTLS && i.Name == req.Name
		}) {
			return nil, response.Conflict(fmt.Sprintf("A TLS identity named %q already exists", req.Name))
		}
		// A certificate another principal holds is refused by the committer (409).
		identityID = fp[:32]
		return []events.Payload{
			events.IdentityCreated{ID: identityID, AuthMethod: events.IdentityTLS, Name: req.Name, Access: req.Access, Projects: nonNil(req.Projects)},
			events.IdentityActivated{ID: identityID, Name: req.Name, Fingerprint: fp, Certificate: certificates.EncodePEM(cert)},
		}, nil
	})
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.Created(w, "/1.0/auth/identities/tls/"+identityID)
}

// checkNew validates an admin's request for a new TLS identity. Its name
// follows the rules of certificate names (certificates.NameProblem).
func checkNew(req api.IdentitiesTLSPost) error {
	switch {
	case req.TrustToken != "":
		return response.Conflict("Client already trusted")
	case req.Name == "":
		return response.BadRequest("Identity name must not be empty")
	case certificates.NameProblem(req.Name) != "":
		return response.BadRequest("Identity name " + certificates.NameProblem(req.Name))
	case req.Name == "." || req.Name == "..":
		// The name addresses the identity in /1.0/auth/identities/tls/{name}.
		return response.BadRequest(`Identity name must not be "." or ".."`)
	case len(req.Groups) > 0:
		return response.BadRequest("Trustlog has no identity groups: give the identity \"access\" (admin, restricted with projects, none)")
	case req.Token && req.Certificate != "":
		return response.BadRequest("Give either a certificate or \"token\": true, not both")
	case !req.Token && req.Certificate == "":
		return response.BadRequest("A certificate or \"token\": true is required")
	}
	if req.Access == "" {
		if len(req.Projects) > 0 {
			return response.BadRequest(fmt.Sprintf("Projects only apply to %q access", events.AccessRestricted))
		}
		return nil
	}
	return checkGrant(api.IdentityPut{Access: req.Access, Projects: req.Projects})
}

// redeemTLS activates a pending identity for an untrusted caller. As LXD:
// only the trust token may be given, the client certificate is required
// and checked before the token is looked up.
func (h *Handler) redeemTLS(w http.ResponseWriter, r *http.Request, id authn.Identity, req api.IdentitiesTLSPost) error {
	if req.Name != "" || req.Token || req.Certificate != "" || len(req.Groups) > 0 || req.Access != "" || len(req.Projects) > 0 {
		return response.Forbidden("Only trust token must be provided")
	}
	if req.TrustToken == "" {
		return response.Forbidden("Trust token required")
	}
	cert := id.PeerCertificate
	if cert == nil {
		return response.BadRequest("No client certificate provided")
	}
	if err := certificates.CheckValidity(cert, h.now()); err != nil {
		return err
	}
	identityID, err := h.tokens.RedeemIdentity(r.Context(), id.Actor(), req.TrustToken, cert)
	if err != nil {
		return err
	}
	response.Created(w, "/1.0/auth/identities/tls/"+identityID)
	return nil
}
