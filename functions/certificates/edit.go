package certificates

import (
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// editBody is the body of PUT and PATCH: the writable fields, and the
// read-only fingerprint, which a client may send back with them (Incus's
// PATCH takes the whole object) as long as it names the entry.
type editBody struct {
	api.CertificatePut
	Fingerprint string `json:"fingerprint"`
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request) { h.update(w, r, false) }

func (h *Handler) patch(w http.ResponseWriter, r *http.Request) { h.update(w, r, true) }

// update runs PUT (replace the writable fields) or PATCH (merge them into
// the current entry). Admins may change every field but the type; anyone
// else may only replace the certificate of their own entry.
func (h *Handler) update(w http.ResponseWriter, r *http.Request, merge bool) {
	if err := h.updateErr(w, r, merge); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.EmptySync(w)
}

func (h *Handler) updateErr(w http.ResponseWriter, r *http.Request, merge bool) error {
	id := authn.FromContext(r.Context())
	cur, err := lookup(h.model.Snapshot(), r.PathValue("fingerprint"))
	if err != nil {
		return err
	}
	if !visible(id, cur) {
		return response.Forbidden("Certificate cannot be changed")
	}
	obj := ToAPI(cur)
	if err := response.CheckETag(r, obj); err != nil {
		return err
	}
	// A PUT replaces the whole entry, as in LXD and Incus: a field left out
	// takes its zero value (restricted false, no name, no projects), but
	// the certificate stays and the type must be given. A field the API
	// does not have is refused rather than dropped.
	var body editBody
	if merge {
		body.CertificatePut = obj.Writable()
	}
	if err := response.DecodeJSONStrict(w, r, &body); err != nil {
		return err
	}
	if body.Fingerprint != "" && !strings.EqualFold(body.Fingerprint, cur.Fingerprint) {
		return response.BadRequest("The fingerprint cannot be changed: replace the certificate instead")
	}
	req := body.CertificatePut
	if req.Type != "" && !validType(req.Type) {
		return response.BadRequest("Invalid certificate type")
	}
	if req.Type != cur.Type {
		return response.BadRequest("The certificate type cannot be changed")
	}
	req.Projects = nonNil(req.Projects)
	if !id.Admin() {
		if req.Name != cur.Name || req.Restricted != cur.Restricted || !slices.Equal(req.Projects, cur.Projects) {
			return response.Forbidden("Only the certificate can be changed")
		}
		req.Description = cur.Description
	} else {
		if err := checkName(req.Name); err != nil {
			return err
		}
		if len(req.Projects) > 0 && !req.Restricted {
			return errProjectsUnrestricted
		}
	}
	ev := events.CertificateUpdated{
		Fingerprint: cur.Fingerprint,
		Name:        req.Name,
		Restricted:  req.Restricted,
		Projects:    req.Projects,
		Description: req.Description,
		Certificate: cur.PEM,
	}
	var newSum [32]byte
	var newCert *x509.Certificate
	if req.Certificate != "" && req.Certificate != cur.PEM {
		c, err := ParsePEM(req.Certificate)
		if err != nil {
			return err
		}
		if err := CheckValidity(c, h.now()); err != nil {
			return err
		}
		newSum, newCert = projections.Fingerprint(c.Raw), c
		ev.Certificate = EncodePEM(c)
		if fp := hex.EncodeToString(newSum[:]); fp != cur.Fingerprint {
			ev.NewFingerprint = fp
		}
	}
	_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		if _, ok := m.CertificateByFingerprint(cur.Fingerprint); !ok {
			return nil, response.NotFound("Certificate not found")
		}
		if newCert != nil && cur.Type != events.CertificateTypeServer {
			if err := pki.Check(m, newCert); err != nil {
				return nil, err
			}
		}
		// A new certificate another principal holds is refused by the committer (409).
		if ev.NewFingerprint == "" && unchanged(cur, ev) {
			return nil, nil // nothing to record
		}
		return []events.Payload{ev}, nil
	})
	return err
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	cur, err := lookup(h.model.Snapshot(), r.PathValue("fingerprint"))
	if err == nil && !id.Admin() && id.Fingerprint != cur.Fingerprint {
		err = response.Forbidden("Certificate cannot be deleted")
	}
	if err == nil {
		_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
			c, ok := m.CertificateByFingerprint(cur.Fingerprint)
			if !ok {
				return nil, response.NotFound("Certificate not found")
			}
			return []events.Payload{events.CertificateRemoved{Fingerprint: c.Fingerprint, Name: c.Name}}, nil
		})
	}
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.EmptySync(w)
}

// unchanged reports whether an update would leave entry c as it is.
func unchanged(c *projections.Certificate, ev events.CertificateUpdated) bool {
	return c.Name == ev.Name && c.Restricted == ev.Restricted && slices.Equal(c.Projects, ev.Projects) &&
		c.Description == ev.Description && c.PEM == ev.Certificate
}
