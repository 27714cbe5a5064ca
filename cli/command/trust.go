package command

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/functions/api"
)

func (e *env) trustCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "trust", Short: "Manage the trust store and trust tokens"}
	cmd.AddCommand(e.trustAddCmd(), e.trustListCmd(), e.trustShowCmd(), e.trustEditCmd(), e.trustRemoveCmd(),
		e.trustListTokensCmd(), e.trustRevokeTokenCmd())
	return cmd
}

// readCertFile reads a PEM (or DER) certificate file. A file that holds a
// private key instead is refused as such (and the key is never sent); one
// that holds both gives its certificate.
func readCertFile(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	der, sawKey := raw, false
	for rest := raw; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			der, sawKey = b.Bytes, false
			break
		}
		der = nil
		sawKey = sawKey || strings.HasSuffix(b.Type, "PRIVATE KEY")
	}
	if sawKey || (der != nil && isPrivateKeyDER(der)) {
		return nil, fmt.Errorf("%s is a private key, not a certificate: give the certificate file (such as client.crt, "+
			"or the output of `trustlog remote get-client-certificate`), and keep the key private", path)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: not a certificate: %w", path, err)
	}
	return c, nil
}

// isPrivateKeyDER reports whether der parses as a private key.
func isPrivateKeyDER(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PrivateKey(der)
	return err == nil
}

// certTypes are the types of trust entries.
var certTypes = []string{"client", "metrics"}

// checkCertType refuses a --type that is no trust entry type, naming the
// valid ones.
func checkCertType(typ string) error {
	if slices.Contains(certTypes, typ) {
		return nil
	}
	return fmt.Errorf("Invalid certificate type %q: valid types are %s (full access is a client certificate without --restricted)",
		typ, strings.Join(certTypes, " and "))
}

func (e *env) trustAddCmd() *cobra.Command {
	var name, typ, projects, description string
	var restricted, quiet bool
	cmd := &cobra.Command{
		Use:   "add [<remote>:] [<cert-file>]",
		Short: "Trust a client certificate, or issue a trust token when no file is given",
		Args:  e.remoteArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, args, err := e.remoteArg(args)
			if err != nil {
				return err
			}
			if projects != "" && !restricted {
				return errors.New("--projects can only be used with --restricted")
			}
			if err := checkCertType(typ); err != nil {
				return err
			}
			req := api.CertificatesPost{Name: name, Type: typ, Restricted: restricted, Projects: []string{}, Description: description}
			if projects != "" {
				req.Projects = strings.Split(projects, ",")
			}
			c, err := e.connect(remote)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				cert, err := readCertFile(args[0])
				if err != nil {
					return err
				}
				req.Certificate = base64.StdEncoding.EncodeToString(cert.Raw)
				_, err = c.Do(cmd.Context(), http.MethodPost, "/1.0/certificates", req, "")
				return err
			}
			if typ != "client" {
				return errors.New("Trust tokens can only be issued for client certificates")
			}
			if req.Name == "" {
				if req.Name, err = e.prompt("Please provide client name: "); err != nil {
					return err
				}
			}
			req.Token = true
			resp, err := c.Do(cmd.Context(), http.MethodPost, "/1.0/certificates", req, "")
			if err != nil {
				return err
			}
			var op api.Operation
			if err := json.Unmarshal(resp.Metadata, &op); err != nil {
				return err
			}
			tok, err := tokenFromOperation(op)
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(e.stdout, tok.Encode())
				return nil
			}
			fmt.Fprintf(e.stdout, "Client %s certificate add token:\n%s\n", tok.ClientName, tok.Encode())
			return nil
		},
		Example: exampleTrustAdd,
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the trust entry")
	cmd.Flags().StringVar(&typ, "type", "client", "certificate type (client or metrics)")
	cmd.Flags().BoolVar(&restricted, "restricted", false, "restrict the certificate to --projects")
	cmd.Flags().StringVar(&projects, "projects", "", "comma-separated projects a restricted certificate may use")
	cmd.Flags().StringVar(&description, "description", "", "description of the entry")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the token")
	return cmd
}

// tokenFromOperation builds the token string from a token operation, as
// the incus client does.
func tokenFromOperation(op api.Operation) (api.CertificateAddToken, error) {
	raw, err := json.Marshal(op.Metadata)
	if err != nil {
		return api.CertificateAddToken{}, err
	}
	var meta struct {
		Secret      string               `json:"secret"`
		Fingerprint string               `json:"fingerprint"`
		Addresses   []string             `json:"addresses"`
		Request     api.CertificatesPost `json:"request"`
		ExpiresAt   time.Time            `json:"expiresAt"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return api.CertificateAddToken{}, fmt.Errorf("token operation: %w", err)
	}
	if meta.Secret == "" {
		return api.CertificateAddToken{}, errors.New("token operation carries no secret")
	}
	return api.CertificateAddToken{ClientName: meta.Request.Name, Fingerprint: meta.Fingerprint, Addresses: meta.Addresses,
		Secret: meta.Secret, ExpiresAt: meta.ExpiresAt}, nil
}

// certRow is one trust-store entry with its parsed certificate (nil when
// the PEM does not parse).
type certRow struct {
	entry api.Certificate
	x509  *x509.Certificate
}

// certColumns are the columns of `config trust list`, by the shorthand
// letters incus uses.
var certColumns = map[rune]column[certRow]{
	'n': {"NAME", func(r certRow) string { return r.entry.Name }},
	't': {"TYPE", func(r certRow) string { return r.entry.Type }},
	'c': {"COMMON NAME", func(r certRow) string {
		if r.x509 == nil {
			return ""
		}
		return r.x509.Subject.CommonName
	}},
	'f': {"FINGERPRINT", func(r certRow) string { return shortFingerprint(r.entry.Fingerprint) }},
	'd': {"DESCRIPTION", func(r certRow) string { return r.entry.Description }},
	'i': {"ISSUE DATE", func(r certRow) string {
		if r.x509 == nil {
			return ""
		}
		return r.x509.NotBefore.UTC().Format(dateLayout)
	}},
	'e': {"EXPIRY DATE", func(r certRow) string {
		if r.x509 == nil {
			return ""
		}
		return r.x509.NotAfter.UTC().Format(dateLayout)
	}},
	'r': {"RESTRICTED", func(r certRow) string {
		if r.entry.Restricted {
			return "yes"
		}
		return "no"
	}},
	'p': {"PROJECTS", func(r certRow) string { return strings.Join(slices.Sorted(slices.Values(r.entry.Projects)), "\n") }},
}

// defaultCertColumns: name, type, common name, fingerprint, issue date,
// expiry date, restricted.
const defaultCertColumns = "ntcfier"

// dateLayout is how list commands print times (in UTC), as incus does.
const dateLayout = "Jan 2, 2006 at 3:04pm (MST)"

// shortFingerprint returns the first 12 characters of a fingerprint, enough
// to name an entry (commands accept a unique prefix).
func shortFingerprint(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

func (e *env) trustListCmd() *cobra.Command {
	var format, columns, at string
	cmd := &cobra.Command{
		Use:     "list [<remote>:]",
		Aliases: []string{"ls"},
		Short:   "List the trusted certificates",
		Long: `List the trusted certificates.

The -c option picks the columns of the table and CSV formats, by letter:
  n name, t type, c common name, f fingerprint (first 12 characters),
  d description, i issue date, e expiry date, r restricted, p projects.
The default is ntcfier. JSON and YAML print the whole entries.`,
		Args: e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			cols, err := parseColumns(columns, certColumns)
			if err != nil {
				return err
			}
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			var certs []api.Certificate
			path := "/1.0/certificates?recursion=1&filter="
			if at != "" {
				// The trust store as it was, folded from the log by the server.
				path = "/1.0/trustlog/audit/trust?at=" + url.QueryEscape(at)
			}
			if _, err := c.Get(cmd.Context(), path, &certs); err != nil {
				return err
			}
			slices.SortStableFunc(certs, func(a, b api.Certificate) int {
				return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Fingerprint, b.Fingerprint))
			})
			rows := make([]certRow, len(certs))
			for i, ce := range certs {
				rows[i].entry = ce
				if b, _ := pem.Decode([]byte(ce.Certificate)); b != nil {
					rows[i].x509, _ = x509.ParseCertificate(b.Bytes)
				}
			}
			if certs == nil {
				certs = []api.Certificate{}
			}
			header, cells := tabulate(cols, rows)
			return renderList(e.stdout, format, header, cells, certs)
		},
		Example:           exampleTrustList,
		ValidArgsFunction: e.completeRemote,
	}
	formatFlag(cmd, &format)
	cmd.Flags().StringVarP(&columns, "columns", "c", defaultCertColumns, "columns of the table and CSV formats (see above)")
	cmd.Flags().StringVar(&at, "at", "", "show the trust store as it was after an event sequence number or at an RFC 3339 time")
	return cmd
}

// fingerprintArgs parses "[<remote>:] <fingerprint>" (the fingerprint may
// also be written "<remote>:<fingerprint>").
func (e *env) fingerprintArgs(args []string) (string, string, error) {
	remote, rest, err := e.remoteArg(args)
	if err != nil {
		return "", "", err
	}
	if len(rest) != 1 {
		return "", "", errors.New("Missing certificate fingerprint")
	}
	if r, fp, ok := strings.Cut(rest[0], ":"); ok {
		if _, known := e.conf.Remote(r); known {
			return r, fp, nil
		}
	}
	return remote, rest[0], nil
}

// certificateClient parses "[<remote>:] <fingerprint>" and connects. What
// cannot be a fingerprint (or a prefix of one) is refused, with the
// fingerprint of the entry it names if it is a name.
func (e *env) certificateClient(args []string) (*client.Client, string, error) {
	remote, fp, err := e.fingerprintArgs(args)
	if err != nil {
		return nil, "", err
	}
	c, err := e.connect(remote)
	if err != nil {
		return nil, "", err
	}
	// A fingerprint as openssl prints it (AB:CD:...) is one too.
	if hex := strings.ToLower(strings.ReplaceAll(fp, ":", "")); isHex(hex) {
		return c, hex, nil
	}
	return nil, "", notAFingerprint(e.ctx, c, fp)
}

// notAFingerprint is the error for a name (or anything else) given where
// a fingerprint goes: it names the fingerprints of the entries called so.
func notAFingerprint(ctx context.Context, c *client.Client, arg string) error {
	var certs []api.Certificate
	if _, err := c.Get(ctx, "/1.0/certificates?recursion=1&filter=", &certs); err == nil {
		var fps []string
		for _, ce := range certs {
			if ce.Name == arg {
				fps = append(fps, shortFingerprint(ce.Fingerprint))
			}
		}
		slices.Sort(fps)
		switch len(fps) {
		case 0:
		case 1:
			return fmt.Errorf("%q is a name, not a fingerprint: use the fingerprint of the trust entry %s, %s", arg, arg, fps[0])
		default:
			return fmt.Errorf("%q is a name, not a fingerprint: %d trust entries are called %s, with fingerprints %s; use one of them",
				arg, len(fps), arg, strings.Join(fps, ", "))
		}
	}
	return fmt.Errorf("%q is not a fingerprint (hexadecimal digits, or enough of the first ones to be unique), nor the name of a trust entry: see `trustlog config trust list`", arg)
}

func (e *env) trustShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show [<remote>:] <fingerprint>",
		Short: "Show a trusted certificate",
		Args:  e.remoteArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, fp, err := e.certificateClient(args)
			if err != nil {
				return err
			}
			var cert api.Certificate
			if _, err := c.Get(cmd.Context(), "/1.0/certificates/"+url.PathEscape(fp), &cert); err != nil {
				return err
			}
			return writeYAML(e.stdout, cert)
		},
		ValidArgsFunction: e.completeFingerprint,
	}
}

func (e *env) trustEditCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "edit [<remote>:] <fingerprint>",
		Short: "Edit a trusted certificate as YAML ($EDITOR, or from stdin when it is not a terminal)",
		Long: `Edit a trusted certificate as YAML ($EDITOR, or from stdin when it is not a terminal).

The fields are name, type, restricted, projects, certificate and description
(and fingerprint, as "show" prints it, which cannot change). The whole entry
is sent back: a field left out keeps its value, except "restricted", which
must always be written out (true or false). Unknown fields, and an empty
name, are refused.`,
		Args: e.remoteArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, fp, err := e.certificateClient(args)
			if err != nil {
				return err
			}
			var cert api.Certificate
			etag, err := c.Get(cmd.Context(), "/1.0/certificates/"+url.PathEscape(fp), &cert)
			if err != nil {
				return err
			}
			var edited []byte
			if e.stdinIsTerminal() {
				edited, err = e.editInEditor(cert.Writable())
			} else {
				edited, err = io.ReadAll(e.in)
			}
			if err != nil {
				return err
			}
			put, err := applyEdit(cert, edited)
			if err != nil {
				return err
			}
			_, err = c.Do(cmd.Context(), http.MethodPut, "/1.0/certificates/"+url.PathEscape(cert.Fingerprint), put, etag)
			return err
		},
		Example:           exampleTrustEdit,
		ValidArgsFunction: e.completeFingerprint,
	}
}

// editInEditor opens v as YAML in $VISUAL or $EDITOR (vi by default) and
// returns what the user saved.
func (e *env) editInEditor(v any) ([]byte, error) {
	f, err := os.CreateTemp("", "trustlog-edit-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if err := writeYAML(f, v); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	editor := e.getenv("VISUAL")
	if editor == "" {
		editor = e.getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	run := exec.Command("sh", "-c", editor+` "$1"`, "editor", f.Name())
	run.Stdin, run.Stdout, run.Stderr = e.stdin, e.stdout, e.stderr
	if err := run.Run(); err != nil {
		return nil, fmt.Errorf("editor %s: %w", filepath.Base(editor), err)
	}
	return os.ReadFile(f.Name())
}

func (e *env) trustRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove [<remote>:] <fingerprint>",
		Aliases: []string{"rm"},
		Short:   "Remove a trusted certificate",
		Args:    e.remoteArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, fp, err := e.certificateClient(args)
			if err != nil {
				return err
			}
			_, err = c.Do(cmd.Context(), http.MethodDelete, "/1.0/certificates/"+url.PathEscape(fp), nil, "")
			return err
		},
		Example:           exampleTrustRemove,
		ValidArgsFunction: e.completeFingerprint,
	}
}

// pendingTokens returns the running token operations of a server.
func pendingTokens(cmd *cobra.Command, c *client.Client) ([]api.Operation, error) {
	var ops map[string][]api.Operation
	if _, err := c.Get(cmd.Context(), "/1.0/operations?recursion=1&project=default", &ops); err != nil {
		return nil, err
	}
	var out []api.Operation
	for _, list := range ops {
		for _, op := range list {
			if op.Class == "token" && op.StatusCode == 103 {
				out = append(out, op)
			}
		}
	}
	return out, nil
}

func (e *env) trustListTokensCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list-tokens [<remote>:]",
		Short: "List the pending trust tokens",
		Args:  e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			ops, err := pendingTokens(cmd, c)
			if err != nil {
				return err
			}
			type row struct {
				ClientName string    `json:"client_name"`
				Token      string    `json:"token"`
				ExpiresAt  time.Time `json:"expires_at"`
			}
			objs := []row{}
			for _, op := range ops {
				tok, err := tokenFromOperation(op)
				if err != nil {
					continue // not a certificate add token
				}
				objs = append(objs, row{ClientName: tok.ClientName, Token: tok.Encode(), ExpiresAt: tok.ExpiresAt})
			}
			slices.SortFunc(objs, func(a, b row) int {
				return cmp.Or(strings.Compare(a.ClientName, b.ClientName), a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.Token, b.Token))
			})
			var rows [][]string
			for _, o := range objs {
				expires := "never"
				if !o.ExpiresAt.IsZero() {
					expires = o.ExpiresAt.UTC().Format(dateLayout)
				}
				rows = append(rows, []string{o.ClientName, o.Token, expires})
			}
			return renderList(e.stdout, format, []string{"NAME", "TOKEN", "EXPIRES AT"}, rows, objs)
		},
		ValidArgsFunction: e.completeRemote,
	}
	formatFlag(cmd, &format)
	return cmd
}

func (e *env) trustRevokeTokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke-token [<remote>:] <name>",
		Short: "Revoke the pending trust tokens issued for a client name",
		Args:  e.remoteArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, rest, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			if len(rest) != 1 {
				return errors.New("Missing client name")
			}
			ops, err := pendingTokens(cmd, c)
			if err != nil {
				return err
			}
			n := 0
			for _, op := range ops {
				tok, err := tokenFromOperation(op)
				if err != nil || tok.ClientName != rest[0] {
					continue
				}
				if _, err := c.Do(cmd.Context(), http.MethodDelete, "/1.0/operations/"+url.PathEscape(op.ID), nil, ""); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("No pending token for %q", rest[0])
			}
			fmt.Fprintf(e.stdout, "Certificate add token for %s deleted\n", rest[0])
			return nil
		},
		ValidArgsFunction: e.completeTokenName,
	}
}
