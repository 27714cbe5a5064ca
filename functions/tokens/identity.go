package tokens

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/certificates"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// IdentityTokenType is the type an identity token carries, as LXD names it.
const IdentityTokenType = "Client certificate"

// IssueIdentity creates a pending TLS identity named name with an initial
// grant (access "" for none) and the token that activates it (LXD's
// POST /1.0/auth/identities/tls with "token": true). The identity and the
// token are one atomic write.
func (h *Handler) IssueIdentity(ctx context.Context, actor events.Actor, name, access string, projects []string) (api.CertificateAddToken, error) {
	tokenID, identityID := h.cfg.NewID(), h.cfg.NewID()
	sec, err := h.newSecret(tokenID)
	if err != nil {
		return api.CertificateAddToken{}, err
	}
	var ev events.TokenIssued
	_, err = h.cfg.Committer.Do(ctx, actor, func(m *projections.Model) ([]events.Payload, error) {
		for _, i := range m.Identities() {
			if i.AuthMethod == events.IdentityTLS && i.Name == name {
				return nil, response.Conflict(fmt.Sprintf("A TLS identity named %q already exists", name))
			}
		}
		ev, err = h.issued(m, tokenID, sec)
		if err != nil {
			return nil, err
		}
		ev.Name, ev.IdentityID = name, identityID
		return []events.Payload{
			events.IdentityCreated{ID: identityID, AuthMethod: events.IdentityTLS, Name: name, Access: access, Projects: projects},
			ev,
		}, nil
	})
	if err != nil {
		return api.CertificateAddToken{}, err
	}
	return api.CertificateAddToken{
		ClientName: name, Fingerprint: ev.Fingerprint, Addresses: ev.Addresses, Secret: sec.text,
		ExpiresAt: ev.ExpiresAt, Type: IdentityTokenType,
	}, nil
}

// RedeemIdentity activates the pending TLS identity of token with cert,
// which the caller has already checked (presence, validity dates), and
// returns the identity's id. As with Redeem, the certificate is checked
// against PKI before the token is looked up, an expired token is burnt
// (and its pending identity with it), and a token is used once.
func (h *Handler) RedeemIdentity(ctx context.Context, actor events.Actor, token string, cert *x509.Certificate) (string, error) {
	tok, err := api.DecodeCertificateAddToken(token)
	if err != nil {
		return "", response.ErrForbidden
	}
	certSum := projections.Fingerprint(cert.Raw)
	fp := hex.EncodeToString(certSum[:])
	pemText := certificates.EncodePEM(cert)
	expired, identityID := false, ""
	_, err = h.cfg.Committer.Do(ctx, actor, func(m *projections.Model) ([]events.Payload, error) {
		t, burn, err := h.pendingFor(m, tok.Secret, cert, &expired)
		if err != nil || burn != nil {
			return burn, err
		}
		if t.IdentityID == "" {
			return nil, response.Forbidden("This is a certificate add token: redeem it with POST /1.0/certificates")
		}
		// A certificate another principal holds is refused by the committer (409),
		// without consuming the token.
		identityID = t.IdentityID
		return []events.Payload{
			events.TokenRedeemed{ID: t.ID, Name: t.Name, Fingerprint: fp},
			events.IdentityActivated{ID: t.IdentityID, Name: t.Name, Fingerprint: fp, Certificate: pemText},
		}, nil
	})
	if err != nil {
		return "", err
	}
	if expired {
		return "", response.Forbidden("Token has expired")
	}
	return identityID, nil
}
