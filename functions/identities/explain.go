package identities

import (
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/projections"
)

// Explain lists, in order, the facts that made id what it is at now: how
// it authenticated, which trust entry, CA and CRL state or claims were
// used, and where its access comes from. It never includes a secret.
func Explain(m *projections.Model, id authn.Identity, now time.Time) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if !id.Trusted {
		add("Not authenticated: no trusted client certificate, bearer token or OIDC access token was presented.")
		return out
	}
	switch id.Method {
	case authn.MethodUnix:
		add("Connected over the local unix socket as user %q: full access (local administration).", id.Name)
		return out
	case authn.MethodOIDC:
		add("OIDC access token issued by %s for subject %q, verified offline (signature through the issuer's JWKS, expiry, audience).", id.Issuer, id.Subject)
		add("User name %q taken from the %q claim.", id.Name, id.UsernameClaim)
		if len(id.Groups) > 0 {
			add("Groups claim: %s.", strings.Join(id.Groups, ", "))
		}
		if i, ok := m.Identity(id.IdentityID); ok && id.IdentityID != "" {
			add("Recorded as identity %s on %s.", i.ID, i.CreatedAt.UTC().Format(time.RFC3339))
		}
	case authn.MethodTLS, authn.MethodCluster, authn.MethodPKI:
		how := "TLS client certificate"
		if id.Bearer {
			how = "JWT bearer token signed by the key of client certificate"
		}
		add("%s %s.", how, id.Fingerprint)
		switch {
		case id.Method == authn.MethodPKI:
			add("No trust entry: trusted because it is signed by the CA and %s is true.", authn.KeyTrustCA)
		case id.IdentityID != "":
			add("Certificate of TLS identity %s (%q).", id.IdentityID, id.Name)
		default:
			add("Matches trust entry %q (type %s).", id.CertificateName, id.Type)
		}
		if id.PeerCertificate != nil {
			add("Certificate valid from %s to %s.", id.PeerCertificate.NotBefore.UTC().Format(time.RFC3339), id.PeerCertificate.NotAfter.UTC().Format(time.RFC3339))
		}
		if id.Method == authn.MethodCluster {
			add("Server certificates (cluster members) are exempt from the CA and CRL checks.")
		} else if ca := m.CA(); ca != nil {
			add("PKI mode: signed by the CA %s.", ca.Fingerprint)
			if crl := m.CRL(); crl != nil {
				state := "current"
				if crl.Stale(now) {
					state = "past its next update (stale)"
				}
				add("CRL number %s of %s, next update %s (%s): the certificate's serial is not revoked.",
					crl.Number, crl.ThisUpdate.UTC().Format(time.RFC3339), crl.NextUpdate.UTC().Format(time.RFC3339), state)
			} else {
				add("No CRL is loaded for the CA.")
			}
		}
	}
	switch {
	case id.Access == "" && id.Restricted:
		add("Access: restricted to projects %s by the trust entry.", strings.Join(id.Projects, ", "))
	case id.Access == "" && id.Type == events.CertificateTypeMetrics:
		add("Access: metrics only.")
	case id.Access == "":
		add("Access: full (unrestricted trusted certificate).")
	case id.AccessSource == authn.AccessFromGrant:
		add("Access: %s%s, granted by an administrator.", id.Access, projectsOf(id))
	case id.Method == authn.MethodOIDC:
		v := m.ConfigValue(authn.KeyOIDCDefaultAccess)
		if v == "" {
			v = "unset (none)"
		}
		add("Access: %s%s by default: no grant was made and %s is %s.", id.Access, projectsOf(id), authn.KeyOIDCDefaultAccess, v)
	default:
		add("Access: %s: no grant was made.", id.Access)
	}
	if id.Access == events.AccessNone {
		add("With no access, only GET /1.0 and GET /1.0/auth/identities/current answer; an administrator can run `trustlog auth identity grant`.")
	}
	return out
}

func projectsOf(id authn.Identity) string {
	if id.Access != events.AccessRestricted {
		return ""
	}
	return " to projects " + strings.Join(id.Projects, ", ")
}

func pemOf(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
