package command

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trustlog/trustlog/cli/client"
)

// refusal is what `auth whoami --explain` says when the server refuses to
// say who the caller is: only what this client can see for itself (its
// certificate, the pinned server certificate, the server's public answer
// to GET /1.0), since the server tells an untrusted caller nothing more.
type refusal struct {
	Remote      string   `json:"remote" yaml:"remote"`
	Address     string   `json:"address" yaml:"address"`
	Refused     string   `json:"refused" yaml:"refused"`
	Explanation []string `json:"explanation" yaml:"explanation"`
	NextSteps   []string `json:"next_steps" yaml:"next_steps"`
}

func (r *refusal) why(format string, args ...any) {
	r.Explanation = append(r.Explanation, fmt.Sprintf(format, args...))
}
func (r *refusal) todo(format string, args ...any) {
	r.NextSteps = append(r.NextSteps, fmt.Sprintf(format, args...))
}

// explainRefusal prints why the request for the caller's identity on
// remote failed, and what to do, then returns refused (the command fails).
func (e *env) explainRefusal(ctx context.Context, remote string, c *client.Client, refused error, format string) error {
	r, _ := e.conf.Remote(remote)
	out := refusal{Remote: remote, Address: r.Addr, Refused: refused.Error()}
	e.explainAnswer(ctx, &out, c, refused)
	switch format {
	case formatJSON:
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	case formatYAML:
		if err := writeYAML(e.stdout, out); err != nil {
			return err
		}
	default:
		w := e.stdout
		fmt.Fprintf(w, "Remote: %s (%s)\n", out.Remote, out.Address)
		fmt.Fprintf(w, "Refused: %s\n", out.Refused)
		fmt.Fprintln(w, "Why:")
		for _, line := range out.Explanation {
			fmt.Fprintf(w, "  - %s\n", line)
		}
		fmt.Fprintln(w, "What to do:")
		for _, line := range out.NextSteps {
			fmt.Fprintf(w, "  - %s\n", line)
		}
	}
	return refused
}

// pointToExplain adds to the server's refusal of the caller (or of every
// caller, 503) that `auth whoami --explain` says why.
func pointToExplain(err error) error {
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable:
			return fmt.Errorf("%w (`trustlog auth whoami --explain` says why)", err)
		}
	}
	return err
}

// explainAnswer fills out from the kind of failure: no answer, another
// server certificate, a server that vouches for no one (503), or a refusal
// of this caller.
func (e *env) explainAnswer(ctx context.Context, out *refusal, c *client.Client, refused error) {
	var down *client.DaemonDownError
	var mismatch *client.CertMismatchError
	var apiErr *client.Error
	switch {
	case errors.As(refused, &down):
		out.why("Nothing listens on the unix socket %s.", down.Socket)
		out.todo("Start trustlogd (`go run ./local`, or its service), or point TRUSTLOG_DIR at its data directory.")
	case errors.As(refused, &mismatch):
		out.why("The server presented a certificate with fingerprint %s, not the one pinned for %s (%s); the request was not sent.",
			mismatch.Presented, out.Remote, mismatch.Pinned)
		out.todo("Check the new fingerprint with the server's administrator before anything else: otherwise the connection may be intercepted.")
		out.todo("If the change is expected, run `trustlog remote remove %s` and add the remote again.", out.Remote)
	case errors.As(refused, &apiErr) && apiErr.Status == http.StatusServiceUnavailable:
		out.why("The server answered 503: %s.", apiErr.Message)
		out.why("An instance whose trust store is not current (it lost contact with its event log for too long, or the log is broken) " +
			"refuses every authenticated request rather than risk missing a revocation. This says nothing about your certificate.")
		out.todo("Try again later; if it lasts, tell the administrator (trustlogd's log and `trustlog audit verify` on the server say why).")
	case errors.As(refused, &apiErr) && (apiErr.Status == http.StatusForbidden || apiErr.Status == http.StatusUnauthorized):
		e.explainUntrusted(ctx, out, c)
	default:
		out.why("No usable answer from %s: %v.", out.Address, refused)
		out.todo("Check the address (`trustlog remote list`) and that the server is up.")
	}
}

// explainUntrusted lists what this client presented and how the server
// sees it, for a caller the server refused.
func (e *env) explainUntrusted(ctx context.Context, out *refusal, c *client.Client) {
	r, _ := e.conf.Remote(out.Remote)
	if pinned, err := e.conf.ServerCert(out.Remote); err == nil && pinned != nil {
		out.why("The server presented the certificate pinned for %s (fingerprint %s): it is the server you added.", out.Remote, client.Fingerprint(pinned))
	} else if !strings.HasPrefix(r.Addr, "unix://") {
		out.why("No certificate is pinned for %s: the server's certificate was verified by the system roots or client.ca.", out.Remote)
	}
	var leaf *x509.Certificate
	switch {
	case strings.HasPrefix(r.Addr, "unix://"):
		out.why("The request went over the unix socket, which the server trusts fully: a refusal there is unexpected.")
	case r.AuthType == authOIDC:
		out.why("This remote authenticates with OpenID Connect (tokens in %s), not with a client certificate.", e.conf.OIDCTokensPath(out.Remote))
	default:
		pair, err := e.conf.ClientCertificate(e.stderr)
		if err != nil || pair.Leaf == nil {
			out.why("The client certificate could not be read: %v.", err)
			break
		}
		leaf = pair.Leaf
		crt, _ := e.conf.ClientCertPaths()
		out.why("This client presented its certificate %s: fingerprint %s, subject %q, valid from %s to %s.", crt,
			client.Fingerprint(leaf), leaf.Subject.String(), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	var srv struct {
		Auth              string `json:"auth"`
		ClientCertificate bool   `json:"client_certificate"`
	}
	if _, err := c.Get(ctx, "/1.0", &srv); err != nil {
		out.why("GET /1.0, which anyone may call, failed too: %v.", err)
	} else {
		saw := "it saw no client certificate"
		if srv.ClientCertificate {
			saw = "it saw a client certificate"
		}
		out.why("The server answers GET /1.0 with auth: %s (%s).", srv.Auth, saw)
	}
	now := time.Now()
	renew := false
	switch {
	case leaf != nil && now.After(leaf.NotAfter):
		out.why("The certificate expired on %s: a server refuses an expired certificate, trusted or not.", leaf.NotAfter.UTC().Format(time.RFC3339))
		crt, key := e.conf.ClientCertPaths()
		out.todo("Make a new certificate: move %s and %s away; the next command generates a new pair, which must then be trusted.", crt, key)
		renew = true
	case leaf != nil && now.Before(leaf.NotBefore):
		out.why("The certificate is not valid before %s (check this machine's clock).", leaf.NotBefore.UTC().Format(time.RFC3339))
	case srv.Auth == "trusted":
		out.why("The server trusts this client but refused this request: its access does not cover it (a metrics certificate reads /1.0/metrics only).")
		out.todo("Ask the administrator for the access you need (`trustlog auth identity grant`, or a client entry).")
		return
	case leaf != nil:
		out.why("The server does not trust this certificate. It does not tell an untrusted client why; the possible reasons: its fingerprint " +
			"is not in the trust store (never added, or removed since); or the server trusts a CA and the certificate is not signed by " +
			"it, or is revoked by its CRL; or it is a metrics certificate, which serves /1.0/metrics only.")
	}
	if leaf == nil {
		out.todo("Ask the administrator whether your identity was removed or refused, and for a grant if you need one.")
		return
	}
	out.todo("Ask the administrator for a trust token (`trustlog config trust add --name <your name>` on their side), then redeem it "+
		"for this remote: `trustlog query %s:/1.0/certificates -X POST -d '{\"type\":\"client\",\"trust_token\":\"<token>\"}'`.", out.Remote)
	if renew {
		out.todo("Or ask them to trust the new certificate: send them the output of `trustlog remote get-client-certificate` " +
			"for `trustlog config trust add <file>`.")
		return
	}
	out.todo("Or ask them to trust this certificate, fingerprint %s: send them the output of `trustlog remote get-client-certificate` "+
		"for `trustlog config trust add <file>`.", client.Fingerprint(leaf))
}
