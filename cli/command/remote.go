package command

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/cli/config"
	"github.com/trustlog/trustlog/functions/api"
)

func (e *env) remoteCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "remote", Short: "Manage the list of remote servers"}
	cmd.AddCommand(e.remoteAddCmd(), e.remoteListCmd(), e.remoteSwitchCmd("switch"), e.remoteSwitchCmd("set-default"),
		e.remoteGetDefaultCmd(), e.remoteRemoveCmd(), e.remoteRenameCmd(), e.remoteSetURLCmd(), e.remoteClientCertCmd(), e.remoteClientTokenCmd())
	return cmd
}

// NormalizeAddr turns what a user typed into a remote address:
// "https://host:port" (port 8443 by default, IPv6 in brackets) or
// "unix:///absolute/path" (for "unix:path", "unix://path" or a path).
func NormalizeAddr(s string) (string, error) {
	path, isUnix := strings.CutPrefix(s, "unix:")
	if isUnix {
		path = strings.TrimPrefix(path, "//")
	} else if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") {
		path, isUnix = s, true
	}
	if isUnix {
		if path == "" {
			return "", fmt.Errorf("Invalid URL %q: no socket path", s)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		return "unix://" + abs, nil
	}
	if ip := net.ParseIP(s); ip != nil && strings.Contains(s, ":") {
		s = "[" + s + "]" // a bare IPv6 address
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("Invalid URL %q: %w", s, err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("Invalid URL scheme %q in %q", u.Scheme, s)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", fmt.Errorf("Invalid URL %q: no host", s)
	}
	if port == "" {
		port = "8443"
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

func (e *env) remoteAddCmd() *cobra.Command {
	var accept, public bool
	var token, authType, protocol string
	cmd := &cobra.Command{
		Use:   "add <name> <IP|FQDN|URL|token>",
		Short: "Add a remote server, by address or with a trust token",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := config.ValidateRemoteName(name); err != nil {
				return err
			}
			if _, ok := e.conf.Remote(name); ok {
				return fmt.Errorf("Remote %s already exists", name)
			}
			if protocol != "" && protocol != "incus" && protocol != "lxd" {
				return fmt.Errorf("Invalid protocol: %s", protocol)
			}
			if authType != "" && authType != authTLS && authType != authOIDC {
				return fmt.Errorf("Authentication type '%s' not supported by this client", authType)
			}
			if tok, err := api.DecodeCertificateAddToken(args[1]); err == nil {
				if accept {
					return errors.New("--accept-certificate can't be used with a trust token: the token pins the server certificate")
				}
				return e.addWithToken(cmd.Context(), name, tok, args[1])
			}
			return e.addByAddress(cmd.Context(), name, args[1], token, authType, accept, public)
		},
		Example: exampleRemoteAdd,
	}
	cmd.Flags().BoolVar(&accept, "accept-certificate", false, "accept the server certificate without asking")
	cmd.Flags().BoolVar(&public, "public", false, "public server: no authentication")
	cmd.Flags().StringVar(&token, "token", "", "trust token to use when the server does not trust this client yet")
	cmd.Flags().StringVar(&authType, "auth-type", "", "authentication type: tls or oidc (default: tls, or oidc when it is all the server offers)")
	cmd.Flags().StringVar(&protocol, "protocol", "", "server protocol (incus)")
	return cmd
}

// addByAddress is `remote add <name> <address>`: verify or pin the server
// certificate, then make sure the server trusts this client.
func (e *env) addByAddress(ctx context.Context, name, addr, token, authType string, accept, public bool) error {
	if looksLikeToken(addr) {
		return fmt.Errorf("%q is no address, and does not decode as a trust token: %s", shorten(addr), tokenHint)
	}
	addr, err := NormalizeAddr(addr)
	if err != nil {
		return err
	}
	if strings.HasPrefix(addr, "unix://") {
		e.conf.Remotes[name] = config.Remote{Addr: addr, Protocol: "incus"}
		return e.conf.Save()
	}
	roots, err := e.conf.ClientCA()
	if err != nil {
		return err
	}
	opts := client.Options{Addr: addr, Remote: name, Roots: roots, InsecureTLS: e.insecureTLS()}
	if !public && authType != authOIDC {
		// A public server is used without authentication: no client
		// certificate needed.
		cert, err := e.conf.ClientCertificate(e.stderr)
		if err != nil {
			return err
		}
		opts.Certificate = &cert
	}
	c, err := client.New(opts)
	if err != nil {
		return err
	}
	var pinned bool
	srv, _, err := c.Server(ctx)
	if err != nil {
		if !client.IsCertificateError(err) {
			return fmt.Errorf("Unable to connect to %s: %w", addr, err)
		}
		presented, ferr := client.FetchCertificate(ctx, addr, e.insecureTLS())
		if ferr != nil {
			return ferr
		}
		if err := e.acceptCertificate(presented, addr, token, accept); err != nil {
			return err
		}
		opts.Pinned = presented
		if c, err = client.New(opts); err != nil {
			return err
		}
		if srv, _, err = c.Server(ctx); err != nil {
			return fmt.Errorf("Unable to connect to %s: %w", addr, err)
		}
		if err := e.conf.SaveServerCert(name, presented); err != nil {
			return err
		}
		pinned = true
	}
	remote := config.Remote{Addr: addr, Protocol: "incus", AuthType: authTLS, Public: public || srv.Public}
	if remote.Public {
		remote.AuthType = ""
		e.conf.Remotes[name] = remote
		return e.conf.Save()
	}
	// The authentication type: as asked, else OIDC when it is all the
	// server offers, else TLS.
	if authType == "" && len(srv.AuthMethods) == 1 && srv.AuthMethods[0] == authOIDC {
		authType = authOIDC
	}
	if authType != "" && !slices.Contains(srv.AuthMethods, authType) {
		if pinned {
			_ = os.Remove(e.conf.ServerCertPath(name))
		}
		return fmt.Errorf("Authentication type '%s' not supported by server", authType)
	}
	if authType == authOIDC {
		remote.AuthType = authOIDC
		if err := e.loginOIDC(ctx, name, opts); err != nil {
			if pinned {
				_ = os.Remove(e.conf.ServerCertPath(name))
			}
			return err
		}
		e.conf.Remotes[name] = remote
		return e.conf.Save()
	}
	if srv.Auth != "trusted" {
		if token == "" {
			if token, err = e.prompt(fmt.Sprintf("Trust token for %s: ", name)); err != nil {
				return err
			}
		}
		if err := e.trustWith(ctx, c, name, token); err != nil {
			if pinned {
				_ = os.Remove(e.conf.ServerCertPath(name))
			}
			return err
		}
	}
	e.conf.Remotes[name] = remote
	return e.conf.Save()
}

// loginOIDC logs in to a new OIDC remote (the device flow runs on the
// server's 401) and checks the server then trusts the user.
func (e *env) loginOIDC(ctx context.Context, name string, opts client.Options) error {
	opts.Certificate = nil
	opts.OIDC = e.oidcOptions(name)
	c, err := client.New(opts)
	if err != nil {
		return err
	}
	srv, _, err := c.Server(ctx)
	if err != nil {
		_ = os.Remove(opts.OIDC.TokenFile)
		return err
	}
	if srv.Auth != "trusted" {
		_ = os.Remove(opts.OIDC.TokenFile)
		return errors.New("Server doesn't trust us after authentication")
	}
	fmt.Fprintf(e.stdout, "Logged in to %s as %s\n", name, srv.AuthUserName)
	return nil
}

// acceptCertificate decides whether to pin the certificate a server
// presented. A --token that decodes as a trust token vouches for its
// server's fingerprint: a match is accepted without asking and a mismatch
// is refused even with --accept-certificate, so the token never reaches
// another server. Otherwise --accept-certificate accepts, or the user is
// asked: y/Y... or the exact fingerprint accept, anything else refuses.
func (e *env) acceptCertificate(presented *x509.Certificate, addr, token string, accept bool) error {
	fp := client.Fingerprint(presented)
	if tok, err := api.DecodeCertificateAddToken(token); err == nil {
		if !strings.EqualFold(tok.Fingerprint, fp) {
			return fingerprintMismatch(addr, tok.Fingerprint, fp)
		}
		return nil
	}
	if accept {
		return nil
	}
	fmt.Fprintf(e.stdout, "Certificate fingerprint: %s\n", fp)
	answer, err := e.prompt("ok (y/n/[fingerprint])? ")
	if err != nil {
		return err
	}
	return judgeAnswer(answer, fp)
}

// judgeAnswer reads the answer to the certificate prompt: y (or yes)
// accepts; so does the fingerprint, in any case and with or without
// colons (as openssl prints it); n or nothing refuses. Another fingerprint,
// or a part of this one, is refused as not matching, and anything else
// as not an answer.
func judgeAnswer(answer, fp string) error {
	lower := strings.ToLower(answer)
	typed := strings.NewReplacer(":", "", " ", "").Replace(lower)
	switch {
	case strings.HasPrefix(lower, "y"), typed == fp:
		return nil
	case lower == "" || lower == "n" || lower == "no":
		return errors.New("Server certificate NACKed by user")
	case isHex(typed) && strings.HasPrefix(fp, typed):
		return fmt.Errorf("The provided fingerprint does not match the server certificate fingerprint: %s is only its first %d digits; type all %d, or y",
			typed, len(typed), len(fp))
	case isHex(typed):
		return fmt.Errorf("The provided fingerprint does not match the server certificate fingerprint: you typed %s, the server presents %s", typed, fp)
	}
	return fmt.Errorf("Invalid answer %q: type y, n or the server certificate fingerprint", answer)
}

// isHex reports whether s is a non-empty string of lowercase hex digits.
func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}

// fingerprintMismatch is the error for a server whose certificate is not
// the one a trust token names.
func fingerprintMismatch(addr, want, got string) error {
	return fmt.Errorf("Certificate fingerprint mismatch between certificate token and server %q: the token expects %s, the server presents %s",
		addr, want, got)
}

// trustWith redeems token and checks the server trusts this client after.
func (e *env) trustWith(ctx context.Context, c *client.Client, name, token string) error {
	if token == "" {
		return errors.New("A trust token is needed: ask the server's administrator for one (trustlog config trust add --name <client>)")
	}
	if _, err := c.Do(ctx, http.MethodPost, "/1.0/certificates", api.CertificatesPost{Type: "client", TrustToken: token}, ""); err != nil {
		return fmt.Errorf("Failed to create certificate: %w", explainRedeem(err))
	}
	srv, _, err := c.Server(ctx)
	if err != nil {
		return err
	}
	if srv.Auth != "trusted" {
		return errors.New("Server doesn't trust us after authentication")
	}
	fmt.Fprintf(e.stdout, "Client certificate now trusted by server: %s\n", name)
	return nil
}

// tokenHint says what to do about a trust token the server will not take.
const tokenHint = "the trust token is invalid or already used: ask the administrator for a new token"

// explainRedeem adds what to do to the server's refusal of a trust token,
// keeping its words (and the *client.Error, for errors.As): a token that
// does not decode ("not authorized") or that no pending token matches is
// invalid or spent, an expired one is too late; either way the fix is a
// new token.
func explainRedeem(err error) error {
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		return err
	}
	switch apiErr.Message {
	case "not authorized", "No matching certificate add operation found":
		return fmt.Errorf("%w: %s", err, tokenHint)
	case "Token has expired":
		return fmt.Errorf("%w: ask the administrator for a new token", err)
	}
	return err
}

// looksLikeToken reports whether s, given where an address or a token
// goes, is meant as a token: longer than a host name label can be, in the
// base64 alphabet, with none of the dots and colons of an address, nor the
// leading slash of a socket path.
func looksLikeToken(s string) bool {
	return len(s) > 63 && !strings.ContainsAny(s, ".:") && !strings.HasPrefix(s, "/") &&
		strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-") == ""
}

// shorten cuts a long argument for an error message.
func shorten(s string) string {
	if len(s) > 24 {
		return s[:20] + "..."
	}
	return s
}

// addWithToken is `remote add <name> <token>`: try every address of the
// token at once, pin the server whose certificate has the token's
// fingerprint (no prompt), and redeem the token.
func (e *env) addWithToken(ctx context.Context, name string, tok api.CertificateAddToken, raw string) error {
	cert, err := e.conf.ClientCertificate(e.stderr)
	if err != nil {
		return err
	}
	roots, err := e.conf.ClientCA()
	if err != nil {
		return err
	}
	type probe struct {
		addr string
		cert *x509.Certificate
		err  error
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	results := make(chan probe, len(tok.Addresses))
	for _, a := range tok.Addresses {
		go func() {
			addr, err := NormalizeAddr(a)
			if err != nil {
				results <- probe{addr: a, err: err}
				return
			}
			c, err := client.FetchCertificate(ctx, addr, e.insecureTLS())
			results <- probe{addr: addr, cert: c, err: err}
		}()
	}
	var errs []error
	var chosen probe
	for range tok.Addresses {
		p := <-results
		switch {
		case p.err != nil:
			errs = append(errs, p.err)
		case client.Fingerprint(p.cert) != strings.ToLower(tok.Fingerprint):
			errs = append(errs, fingerprintMismatch(p.addr, tok.Fingerprint, client.Fingerprint(p.cert)))
		case chosen.addr == "":
			chosen = p
		}
		if chosen.addr != "" {
			break
		}
	}
	if chosen.addr == "" {
		return errors.Join(append([]error{errors.New("no address of the token answered with the expected certificate")}, errs...)...)
	}
	opts := client.Options{Addr: chosen.addr, Remote: name, Certificate: &cert, Roots: roots, InsecureTLS: e.insecureTLS()}
	c, err := client.New(opts)
	if err != nil {
		return err
	}
	srv, _, err := c.Server(ctx)
	pin := false
	if err != nil {
		// Not verifiable with the system roots or client.ca: pin the
		// certificate the token vouched for.
		opts.Pinned, pin = chosen.cert, true
		if c, err = client.New(opts); err != nil {
			return err
		}
		if srv, _, err = c.Server(ctx); err != nil {
			return fmt.Errorf("Unable to connect to %s: %w", chosen.addr, err)
		}
	}
	if srv.Auth != "trusted" {
		if err := e.trustWith(ctx, c, name, raw); err != nil {
			return err
		}
	}
	if pin {
		if err := e.conf.SaveServerCert(name, chosen.cert); err != nil {
			return err
		}
	}
	e.conf.Remotes[name] = config.Remote{Addr: chosen.addr, Protocol: "incus", AuthType: "tls"}
	return e.conf.Save()
}

func (e *env) remoteListCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the remotes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			type row struct {
				Name     string `json:"name"`
				Addr     string `json:"addr"`
				Protocol string `json:"protocol"`
				AuthType string `json:"auth_type"`
				Public   bool   `json:"public"`
				Static   bool   `json:"static"`
				Global   bool   `json:"global"`
				Current  bool   `json:"current"`
			}
			var objs []row
			var rows [][]string
			for _, n := range e.conf.Names() {
				r, _ := e.conf.Remote(n)
				o := row{Name: n, Addr: r.Addr, Protocol: r.Protocol, AuthType: r.AuthType, Public: r.Public, Current: n == e.conf.DefaultRemote}
				switch {
				case strings.HasPrefix(r.Addr, "unix://"):
					o.AuthType = "file access"
				case r.Public:
					o.AuthType = "none"
				case o.AuthType == "":
					o.AuthType = "tls"
				}
				if n == config.LocalRemote {
					o.Addr, o.Static = "unix://", true
				}
				if o.Protocol == "" {
					o.Protocol = "incus"
				}
				objs = append(objs, o)
				label := n
				if o.Current && format == formatTable {
					label += " (current)"
				}
				rows = append(rows, []string{label, o.Addr, o.Protocol, o.AuthType, yesNo(o.Public), yesNo(o.Static), yesNo(o.Global)})
			}
			return renderList(e.stdout, format, []string{"NAME", "URL", "PROTOCOL", "AUTH TYPE", "PUBLIC", "STATIC", "GLOBAL"}, rows, objs)
		},
	}
	formatFlag(cmd, &format)
	return cmd
}

func (e *env) remoteSwitchCmd(use string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " <remote>",
		Short: "Set the default remote",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, ok := e.conf.Remote(args[0]); !ok {
				return fmt.Errorf("The remote %q doesn't exist", args[0])
			}
			e.conf.DefaultRemote = args[0]
			return e.conf.Save()
		},
		ValidArgsFunction: e.completeRemoteName,
	}
}

func (e *env) remoteGetDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get-default",
		Short: "Print the default remote",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(e.stdout, e.conf.DefaultRemote)
			return nil
		},
	}
}

func (e *env) remoteRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove <remote>",
		Aliases: []string{"rm"},
		Short:   "Remove a remote",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name == config.LocalRemote {
				return errors.New("Remote local is static and cannot be modified")
			}
			if _, ok := e.conf.Remotes[name]; !ok {
				return fmt.Errorf("The remote %q doesn't exist", name)
			}
			if e.conf.DefaultRemote == name {
				return errors.New("Can't remove the default remote")
			}
			delete(e.conf.Remotes, name)
			for _, f := range []string{e.conf.ServerCertPath(name), e.conf.OIDCTokensPath(name), e.conf.OIDCTokensPath(name) + ".lock"} {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return e.conf.Save()
		},
		ValidArgsFunction: e.completeRemoteName,
	}
}

func (e *env) remoteRenameCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rename <old> <new>",
		Short: "Rename a remote",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			old, nw := args[0], args[1]
			r, ok := e.conf.Remotes[old]
			if !ok {
				return fmt.Errorf("The remote %q doesn't exist", old)
			}
			if err := config.ValidateRemoteName(nw); err != nil {
				return err
			}
			if _, exists := e.conf.Remote(nw); exists {
				return fmt.Errorf("Remote %s already exists", nw)
			}
			if err := os.Rename(e.conf.OIDCTokensPath(old), e.conf.OIDCTokensPath(nw)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if err := os.Rename(e.conf.ServerCertPath(old), e.conf.ServerCertPath(nw)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			delete(e.conf.Remotes, old)
			e.conf.Remotes[nw] = r
			if e.conf.DefaultRemote == old {
				e.conf.DefaultRemote = nw
			}
			return e.conf.Save()
		},
		ValidArgsFunction: e.completeRemoteName,
	}
}

func (e *env) remoteSetURLCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set-url <remote> <URL>",
		Short: "Change the address of a remote",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, ok := e.conf.Remotes[args[0]]
			if !ok {
				return fmt.Errorf("The remote %q doesn't exist", args[0])
			}
			addr, err := NormalizeAddr(args[1])
			if err != nil {
				return err
			}
			r.Addr = addr
			e.conf.Remotes[args[0]] = r
			return e.conf.Save()
		},
		ValidArgsFunction: e.completeRemoteName,
	}
}

func (e *env) remoteClientCertCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get-client-certificate",
		Short: "Print the client certificate, generating it if needed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := e.conf.ClientCertificate(e.stderr); err != nil {
				return err
			}
			crt, _ := e.conf.ClientCertPaths()
			raw, err := os.ReadFile(crt)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(raw)
			return err
		},
	}
}
