package command

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/functions/api"
)

func (e *env) infoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info [<remote>:]",
		Short: "Show the server as it describes itself (GET /1.0)",
		Args:  e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			resp, err := c.Do(cmd.Context(), http.MethodGet, "/1.0", nil, "")
			if err != nil {
				return err
			}
			return writeYAML(e.stdout, resp.Metadata)
		},
		ValidArgsFunction: e.completeRemote,
	}
}

func (e *env) queryCmd() *cobra.Command {
	var method, data string
	var raw bool
	cmd := &cobra.Command{
		Use:   "query [<remote>:]<API path>",
		Short: "Send a raw request to the API and print the reply's metadata",
		Long: `Send a raw request to the API and print the reply's metadata, as indented JSON.

A reply that is not JSON (such as the Prometheus text of /1.0/metrics) is
printed as it came. --raw prints the whole reply body as the server sent it,
the envelope of an error reply included (the command still fails then).`,
		Example:           exampleQuery,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: e.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path, err := e.conf.ParseRemote(args[0])
			if err != nil {
				return err
			}
			if !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			c, err := e.connect(name)
			if err != nil {
				return err
			}
			var body []byte
			if data != "" {
				if !json.Valid([]byte(data)) {
					return fmt.Errorf("--data is not valid JSON")
				}
				body = []byte(data)
			}
			reply, err := c.Raw(cmd.Context(), strings.ToUpper(method), path, body)
			if err != nil {
				return err
			}
			if raw || (reply.Status < 400 && !isJSON(reply.ContentType)) {
				if _, err := e.stdout.Write(reply.Body); err != nil {
					return err
				}
				if len(reply.Body) > 0 && !bytes.HasSuffix(reply.Body, []byte("\n")) {
					fmt.Fprintln(e.stdout)
				}
				if reply.Status < 400 {
					return nil
				}
			}
			resp, err := reply.Decode()
			if err != nil || raw {
				return err
			}
			var out bytes.Buffer
			if len(resp.Metadata) == 0 || string(resp.Metadata) == "null" {
				return nil
			}
			if err := json.Indent(&out, resp.Metadata, "", "    "); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, out.String())
			return nil
		},
	}
	cmd.Flags().StringVarP(&method, "request", "X", "GET", "HTTP method")
	cmd.Flags().StringVarP(&data, "data", "d", "", "JSON body")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the reply body as the server sent it")
	return cmd
}

// isJSON reports whether a Content-Type names JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func (e *env) configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Manage the server configuration and trust store"}
	cmd.AddCommand(e.configSetCmd(), e.configGetCmd(), e.configUnsetCmd(), e.configShowCmd(), e.trustCmd())
	return cmd
}

// updateConfig reads the server configuration, lets change edit it, and
// writes it back with the ETag it read (PUT /1.0, as incus does).
func (e *env) updateConfig(cmd *cobra.Command, remote string, change func(map[string]string) error) error {
	c, err := e.connect(remote)
	if err != nil {
		return err
	}
	srv, etag, err := c.Server(cmd.Context())
	if err != nil {
		return err
	}
	cfg := srv.Config
	if cfg == nil {
		cfg = map[string]string{}
	}
	if err := change(cfg); err != nil {
		return err
	}
	_, err = c.Do(cmd.Context(), http.MethodPut, "/1.0", api.ServerPut{Config: cfg}, etag)
	return err
}

func (e *env) configSetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set [<remote>:] <key> <value> | <key>=<value>...",
		Short: "Set server configuration keys",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, args, err := e.remoteArg(args)
			if err != nil {
				return err
			}
			kv := map[string]string{}
			switch {
			case len(args) == 2 && !strings.Contains(args[0], "="):
				kv[args[0]] = args[1]
			case len(args) > 0:
				for _, a := range args {
					k, v, ok := strings.Cut(a, "=")
					if !ok {
						return fmt.Errorf("Invalid argument %q: expected <key>=<value>", a)
					}
					kv[k] = v
				}
			default:
				return fmt.Errorf("Missing key and value")
			}
			return e.updateConfig(cmd, remote, func(cfg map[string]string) error {
				maps.Copy(cfg, kv)
				return nil
			})
		},
		Example:           exampleConfigSet,
		ValidArgsFunction: e.completeConfigKey,
	}
}

func (e *env) configUnsetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unset [<remote>:] <key>",
		Short: "Unset a server configuration key",
		Args:  e.remoteArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, args, err := e.remoteArg(args)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("Missing key")
			}
			// As incus: the key is sent with an empty value, so the server
			// validates it (an unknown key is refused, as by set).
			return e.updateConfig(cmd, remote, func(cfg map[string]string) error {
				cfg[args[0]] = ""
				return nil
			})
		},
		ValidArgsFunction: e.completeConfigKey,
	}
}

func (e *env) configGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get [<remote>:] <key>",
		Short: "Print the value of a server configuration key",
		Args:  e.remoteArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, args, err := e.remoteArg(args)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("Missing key")
			}
			c, err := e.connect(remote)
			if err != nil {
				return err
			}
			srv, _, err := c.Server(cmd.Context())
			if err != nil {
				return err
			}
			value, set := srv.Config[args[0]]
			if !set {
				if err := checkKnownKey(cmd.Context(), c, srv, args[0]); err != nil {
					return err
				}
			}
			fmt.Fprintln(e.stdout, value)
			return nil
		},
		Example:           exampleConfigGet,
		ValidArgsFunction: e.completeConfigKey,
	}
}

func (e *env) configShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show [<remote>:]",
		Short: "Show the server configuration",
		Args:  e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			srv, _, err := c.Server(cmd.Context())
			if err != nil {
				return err
			}
			cfg := srv.Config
			if cfg == nil {
				cfg = map[string]string{}
			}
			return writeYAML(e.stdout, map[string]any{"config": cfg})
		},
		ValidArgsFunction: e.completeRemote,
	}
}

// checkKnownKey refuses a key the server does not know, with the text of
// the server's own refusal of `config set`: GET /1.0 shows only the keys
// that have a value, so the server's list of keys
// (GET /1.0/metadata/configuration) tells an unknown key from an unset
// one. user.* keys are free-form. A server without the list is trusted.
func checkKnownKey(ctx context.Context, c *client.Client, srv api.Server, key string) error {
	if strings.HasPrefix(key, "user.") && len(key) > len("user.") {
		return nil
	}
	if !slices.Contains(srv.APIExtensions, metadataExtension) {
		return nil
	}
	var meta api.MetadataConfiguration
	if _, err := c.Get(ctx, "/1.0/metadata/configuration", &meta); err != nil {
		return err
	}
	if !slices.Contains(meta.ServerKeys(), key) {
		return fmt.Errorf("Invalid config: unknown configuration key %q", key)
	}
	return nil
}

// metadataExtension is the API extension of GET /1.0/metadata/configuration.
const metadataExtension = "metadata_configuration"
