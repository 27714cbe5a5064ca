package commit

import (
	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// checkOwnership refuses, with a 409, a write whose events would give a
// certificate to a principal while another one holds it (a trust-store
// entry, or an active TLS identity). It runs on every decision, against
// the model the decision saw, so no write path can forget it and two
// writers racing for one certificate are told apart by the conditional
// append: the loser decides again and meets the winner's holder.
func checkOwnership(m *projections.Model, ps []events.Payload) error {
	h, taken := m.TakenCertificate(ps)
	if !taken {
		return nil
	}
	if h.Kind == projections.HeldByIdentity {
		return response.Conflict("Certificate already used by a TLS identity")
	}
	return response.Conflict("Certificate already in trust store")
}
