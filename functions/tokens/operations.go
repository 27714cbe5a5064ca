package tokens

import (
	"net/http"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// Operation status codes, as LXD and Incus number them.
const (
	statusRunning   = 103
	statusCancelled = 401
)

// OperationURL returns the API path of the operation with id.
func OperationURL(id string) string { return "/1.0/operations/" + id }

// operation renders a token as an operation of class "token". The secret is
// included only when withSecret is set (admins); it is unsealed on demand and
// never stored in clear.
func (h *Handler) operation(t *projections.Token, withSecret bool) api.Operation {
	op := api.Operation{
		ID:          t.ID,
		Class:       "token",
		Description: "Certificate add token",
		CreatedAt:   t.IssuedAt,
		UpdatedAt:   t.IssuedAt,
		Status:      "Running",
		StatusCode:  statusRunning,
		Resources:   map[string][]string{},
		MayCancel:   true,
		Location:    h.cfg.Host.ServerName(),
	}
	if !t.Pending() {
		op.Status, op.StatusCode, op.UpdatedAt, op.MayCancel = "Cancelled", statusCancelled, t.EndedAt, false
	}
	meta := map[string]any{
		"fingerprint": t.Fingerprint,
		"addresses":   nonNil(t.Addresses),
		"request": api.CertificatesPost{
			Name: t.Name, Type: t.Type, Restricted: t.Restricted, Projects: nonNil(t.Projects),
			Description: t.Description, Token: true,
		},
	}
	if !t.ExpiresAt.IsZero() {
		meta["expiresAt"] = t.ExpiresAt
	}
	if withSecret && t.Pending() && h.cfg.Box != nil {
		if secret, err := h.cfg.Box.Open(t.SealedSecret, []byte(t.ID)); err == nil {
			meta["secret"] = string(secret)
		} else {
			h.cfg.Log.Error("token secret does not open under the service key", "token", t.ID)
		}
	}
	op.Metadata = meta
	return op
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	running := []any{}
	if id.Admin() {
		recursive := r.URL.Query().Get("recursion") == "1" || r.URL.Query().Get("recursion") == "2"
		for _, t := range h.cfg.Model.Snapshot().PendingTokens() {
			if t.IdentityID != "" {
				continue // an identity's token is not an operation (as LXD)
			}
			if recursive {
				running = append(running, h.operation(t, true))
			} else {
				running = append(running, OperationURL(t.ID))
			}
		}
	}
	response.Sync(w, map[string][]any{"running": running})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	t, ok := h.cfg.Model.Snapshot().Token(r.PathValue("id"))
	if !ok || !id.Admin() || t.IdentityID != "" {
		response.Fail(w, r, h.cfg.Log, response.NotFound("Operation not found"))
		return
	}
	response.Sync(w, h.operation(t, true))
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	opID := r.PathValue("id")
	if !id.Admin() {
		response.Fail(w, r, h.cfg.Log, response.ErrForbidden)
		return
	}
	_, err := h.cfg.Committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		t, ok := m.Token(opID)
		if !ok || t.IdentityID != "" {
			return nil, response.NotFound("Operation not found")
		}
		if !t.Pending() {
			return nil, response.BadRequest("Only running operations can be cancelled")
		}
		return []events.Payload{events.TokenRevoked{ID: t.ID, Name: t.Name}}, nil
	})
	if err != nil {
		response.Fail(w, r, h.cfg.Log, err)
		return
	}
	response.EmptySync(w)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
