package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/functions/api"
)

func (e *env) authCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "auth", Short: "Manage identities (OIDC users, TLS identities) and see who you are"}
	identity := &cobra.Command{Use: "identity", Short: "Manage identities and their access"}
	identity.AddCommand(e.identityListCmd(), e.identityShowCmd(), e.identityGrantCmd(), e.identityRevokeCmd(),
		e.identityDeleteCmd(), e.identityCreateCmd())
	cmd.AddCommand(identity, e.whoamiCmd())
	return cmd
}

// identityArg splits "[<remote>:]<method>/<name-or-id>".
func (e *env) identityArg(arg string) (remote, method, ref string, err error) {
	remote = e.conf.DefaultRemote
	if before, after, ok := strings.Cut(arg, ":"); ok && !strings.Contains(before, "/") {
		if _, known := e.conf.Remote(before); !known {
			return "", "", "", fmt.Errorf("The remote %q doesn't exist", before)
		}
		remote, arg = before, after
	}
	method, ref, ok := strings.Cut(arg, "/")
	if !ok || ref == "" || (method != "oidc" && method != "tls") {
		return "", "", "", fmt.Errorf("Invalid identity %q: expected oidc/<name-or-id> or tls/<name-or-id>", arg)
	}
	return remote, method, ref, nil
}

func identityPath(method, ref string) string {
	return "/1.0/auth/identities/" + method + "/" + url.PathEscape(ref)
}

// identityClient connects to the remote of "[<remote>:]<method>/<ref>" and
// returns the identity's API path.
func (e *env) identityClient(arg string) (*client.Client, string, error) {
	remote, method, ref, err := e.identityArg(arg)
	if err != nil {
		return nil, "", err
	}
	c, err := e.connect(remote)
	return c, identityPath(method, ref), err
}

func (e *env) identityListCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list [<remote>:]",
		Short: "List identities and their access",
		Args:  e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			var ids []api.Identity
			if _, err := c.Get(cmd.Context(), "/1.0/auth/identities?recursion=1", &ids); err != nil {
				return err
			}
			rows := make([][]string, 0, len(ids))
			for _, i := range ids {
				rows = append(rows, []string{i.AuthenticationMethod, i.Name, i.ID, i.Type, accessText(i)})
			}
			return renderList(e.stdout, format, []string{"AUTHENTICATION METHOD", "NAME", "ID", "TYPE", "ACCESS"}, rows, ids)
		},
		ValidArgsFunction: e.completeRemote,
	}
	formatFlag(cmd, &format)
	return cmd
}

// accessText is an identity's access for a table cell.
func accessText(i api.Identity) string {
	s := i.Access
	if i.Access == "restricted" {
		s += " (" + strings.Join(i.Projects, ",") + ")"
	}
	if i.AccessSource == "default" {
		s += " [default]"
	}
	return s
}

func (e *env) identityShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show [<remote>:]<method>/<name-or-id>",
		Short: "Show an identity",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := e.identityClient(args[0])
			if err != nil {
				return err
			}
			var i api.Identity
			if _, err := c.Get(cmd.Context(), path, &i); err != nil {
				return err
			}
			return writeYAML(e.stdout, i)
		},
	}
}

// putGrant sends a grant for an identity.
func (e *env) putGrant(cmd *cobra.Command, arg string, grant api.IdentityPut) error {
	c, path, err := e.identityClient(arg)
	if err != nil {
		return err
	}
	_, err = c.Do(cmd.Context(), http.MethodPut, path, grant, "")
	return err
}

func (e *env) identityGrantCmd() *cobra.Command {
	var projects string
	cmd := &cobra.Command{
		Use:   "grant [<remote>:]<method>/<name-or-id> admin|restricted",
		Short: "Grant an identity full access, or access restricted to --projects",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			grant := api.IdentityPut{Access: args[1], Projects: []string{}}
			switch args[1] {
			case "admin":
				if projects != "" {
					return errors.New("--projects only applies to restricted access")
				}
			case "restricted":
				if projects == "" {
					return errors.New("restricted access needs --projects")
				}
				grant.Projects = strings.Split(projects, ",")
			default:
				return fmt.Errorf("Invalid access %q: admin or restricted (use `revoke` to withdraw access)", args[1])
			}
			return e.putGrant(cmd, args[0], grant)
		},
		Example: exampleIdentityGrant,
	}
	cmd.Flags().StringVar(&projects, "projects", "", "comma-separated projects of restricted access")
	return cmd
}

func (e *env) identityRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke [<remote>:]<method>/<name-or-id>",
		Short: "Withdraw an identity's access (it can still authenticate, and see only GET /1.0)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.putGrant(cmd, args[0], api.IdentityPut{Access: "none", Projects: []string{}})
		},
	}
}

func (e *env) identityDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete [<remote>:]<method>/<name-or-id>",
		Short: "Delete an identity (an OIDC user who comes back is recorded again, without the old grant)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := e.identityClient(args[0])
			if err != nil {
				return err
			}
			_, err = c.Do(cmd.Context(), http.MethodDelete, path, nil, "")
			return err
		},
	}
}

func (e *env) identityCreateCmd() *cobra.Command {
	var access, projects string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "create [<remote>:]tls/<name> | [<remote>:]oidc/<user-name>",
		Short: "Create a pending TLS identity (prints its token), or an OIDC identity ahead of the user's first login",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, method, name, err := e.identityArg(args[0])
			if err != nil {
				return err
			}
			req := api.IdentitiesTLSPost{Name: name, Token: method == "tls", Access: access, Groups: []string{}}
			if projects != "" {
				req.Projects = strings.Split(projects, ",")
			}
			c, err := e.connect(remote)
			if err != nil {
				return err
			}
			resp, err := c.Do(cmd.Context(), http.MethodPost, "/1.0/auth/identities/"+method, req, "")
			if err != nil || method == "oidc" {
				return err
			}
			var tok api.CertificateAddToken
			if err := json.Unmarshal(resp.Metadata, &tok); err != nil {
				return fmt.Errorf("decode token: %w", err)
			}
			if quiet {
				fmt.Fprintln(e.stdout, tok.Encode())
				return nil
			}
			fmt.Fprintf(e.stdout, "TLS identity %s token:\n%s\n", name, tok.Encode())
			return nil
		},
	}
	cmd.Flags().StringVar(&access, "access", "", "initial access: admin, restricted (with --projects) or none (default: none)")
	cmd.Flags().StringVar(&projects, "projects", "", "comma-separated projects of restricted access")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the token")
	return cmd
}

func (e *env) whoamiCmd() *cobra.Command {
	var explain bool
	var format string
	cmd := &cobra.Command{
		Use:   "whoami [<remote>:]",
		Short: "Show who the server thinks you are, and with --explain why your access is what it is",
		Args:  e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case formatTable, formatJSON, formatYAML:
			default:
				return fmt.Errorf("Invalid format %q (table, json or yaml)", format)
			}
			remote, _, err := e.remoteArg(args)
			if err != nil {
				return err
			}
			c, err := e.connect(remote)
			if err != nil {
				return err
			}
			var info api.IdentityInfo
			if _, err := c.Get(cmd.Context(), "/1.0/auth/identities/current", &info); err != nil {
				if explain {
					return e.explainRefusal(cmd.Context(), remote, c, err, format)
				}
				return pointToExplain(err)
			}
			switch format {
			case formatJSON:
				return writeJSON(e.stdout, info)
			case formatYAML:
				return writeYAML(e.stdout, info)
			}
			w := e.stdout
			fmt.Fprintf(w, "Name: %s\n", info.Name)
			fmt.Fprintf(w, "Authentication method: %s\n", info.Method)
			if info.Recorded {
				fmt.Fprintf(w, "Identity: %s/%s (%s)\n", info.AuthenticationMethod, info.ID, info.Type)
			}
			fmt.Fprintf(w, "Access: %s\n", accessText(info.Identity))
			if explain {
				fmt.Fprintln(w, "Why:")
				for _, line := range info.Explanation {
					fmt.Fprintf(w, "  - %s\n", line)
				}
			}
			return nil
		},
		ValidArgsFunction: e.completeRemote,
	}
	cmd.Flags().BoolVar(&explain, "explain", false, "explain which trust entry, CA, CRL state or claims decided access")
	cmd.Flags().StringVarP(&format, "format", "f", formatTable, "output format (table, json, yaml)")
	return cmd
}
