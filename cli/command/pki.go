package command

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"
)

func (e *env) pkiCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pki", Short: "Manage PKI mode: the CA and its revocation list"}
	ca := &cobra.Command{Use: "ca", Short: "The certificate authority client certificates must be signed by"}
	ca.AddCommand(e.pkiSetCmd("ca", "/1.0/trustlog/pki/ca", "certificate"), e.pkiShowCmd("ca", "/1.0/trustlog/pki/ca"))
	crl := &cobra.Command{Use: "crl", Short: "The CA's certificate revocation list"}
	crl.AddCommand(e.pkiSetCmd("crl", "/1.0/trustlog/pki/crl", "crl"), e.pkiShowCmd("crl", "/1.0/trustlog/pki/crl"))
	cmd.AddCommand(ca, crl)
	return cmd
}

// pkiSetCmd uploads a file: the CA as PEM ("" turns PKI mode off with
// --off), the CRL as PEM or DER (sent as base64).
func (e *env) pkiSetCmd(what, path, field string) *cobra.Command {
	var off bool
	cmd := &cobra.Command{
		Use:   "set [<remote>:] <file>",
		Short: "Publish a new " + what + " (PEM or DER file)",
		Args:  e.remoteArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, rest, err := e.remoteArg(args)
			if err != nil {
				return err
			}
			value := ""
			switch {
			case off && what == "ca":
			case len(rest) == 1:
				raw, err := os.ReadFile(rest[0])
				if err != nil {
					return err
				}
				value = string(raw)
				if what == "crl" {
					value = base64.StdEncoding.EncodeToString(raw)
					if len(raw) > 0 && raw[0] == '-' {
						value = string(raw)
					}
				}
			default:
				return errors.New("Missing file")
			}
			c, err := e.connect(remote)
			if err != nil {
				return err
			}
			_, err = c.Do(cmd.Context(), http.MethodPut, path, map[string]string{field: value}, "")
			return err
		},
	}
	if what == "ca" {
		cmd.Flags().BoolVar(&off, "off", false, "remove the CA: turn PKI mode off")
	}
	return cmd
}

func (e *env) pkiShowCmd(what, path string) *cobra.Command {
	return &cobra.Command{
		Use:   "show [<remote>:]",
		Short: "Show the " + what + " in force",
		Args:  e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			resp, err := c.Do(cmd.Context(), http.MethodGet, path, nil, "")
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(resp.Metadata, &v); err != nil {
				return fmt.Errorf("decode %s: %w", path, err)
			}
			return writeYAML(e.stdout, resp.Metadata)
		},
		ValidArgsFunction: e.completeRemote,
	}
}
