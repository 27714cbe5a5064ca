package command

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/functions/api"
)

// Shell completion (cobra's `trustlog completion bash|zsh|fish|powershell`
// scripts call `trustlog __complete ...`): remotes from the configuration;
// fingerprints, token names and configuration keys from the server. A
// completion never prompts, never opens a browser, never generates the
// client certificate and gives up on a server after completionTimeout.

// completionTimeout bounds the requests of one completion.
const completionTimeout = 5 * time.Second

// completeRemote completes the "[<remote>:]" of a command that takes
// nothing else, and the remote part of "[<remote>:]<path>": remote names
// with their colon.
func (e *env) completeRemote(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return e.remoteThen(false, nil)(cmd, args, toComplete)
}

// completeRemoteName completes the bare remote name the remote commands
// take (remote switch, remove, rename, set-url).
func (e *env) completeRemoteName(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 || e.load() != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return withPrefix(e.conf.Names(), toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeFingerprint completes "[<remote>:] <fingerprint>" (also written
// "<remote>:<fingerprint>") with the fingerprints of the remote's trust
// store, each described by its entry's name.
func (e *env) completeFingerprint(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return e.remoteThen(true, func(ctx context.Context, _ *cobra.Command, c *client.Client) ([]cobra.Completion, error) {
		var certs []api.Certificate
		if _, err := c.Get(ctx, "/1.0/certificates?recursion=1&filter=", &certs); err != nil {
			return nil, err
		}
		out := make([]cobra.Completion, 0, len(certs))
		for _, ce := range certs {
			out = append(out, cobra.CompletionWithDesc(ce.Fingerprint, ce.Name))
		}
		return out, nil
	})(cmd, args, toComplete)
}

// completeTokenName completes "[<remote>:] <name>" with the client names of
// the remote's pending trust tokens.
func (e *env) completeTokenName(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return e.remoteThen(false, func(_ context.Context, cmd *cobra.Command, c *client.Client) ([]cobra.Completion, error) {
		ops, err := pendingTokens(cmd, c)
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, op := range ops {
			if tok, err := tokenFromOperation(op); err == nil && !slices.Contains(out, tok.ClientName) {
				out = append(out, tok.ClientName)
			}
		}
		return out, nil
	})(cmd, args, toComplete)
}

// completeConfigKey completes "[<remote>:] <key>" with the keys the remote
// knows (GET /1.0/metadata/configuration) and those set on it (its user.*
// keys).
func (e *env) completeConfigKey(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return e.remoteThen(false, func(ctx context.Context, _ *cobra.Command, c *client.Client) ([]cobra.Completion, error) {
		srv, _, err := c.Server(ctx)
		if err != nil {
			return nil, err
		}
		var out []string
		if slices.Contains(srv.APIExtensions, metadataExtension) {
			var meta api.MetadataConfiguration
			if _, err := c.Get(ctx, "/1.0/metadata/configuration", &meta); err == nil {
				out = meta.ServerKeys()
			}
		}
		for k := range srv.Config {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
		return out, nil
	})(cmd, args, toComplete)
}

// remoteThen completes "[<remote>:] <item>": the first word is a remote
// ("srv:") or an item of the default remote, and after a remote an item of
// that remote. joined says an item may also be written "srv:<item>". A
// nil items completes remotes only.
func (e *env) remoteThen(joined bool, items func(context.Context, *cobra.Command, *client.Client) ([]cobra.Completion, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if e.load() != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		switch {
		case len(args) == 0:
			if remote, rest, ok := strings.Cut(toComplete, ":"); ok {
				if joined {
					for _, c := range e.serverItems(cmd, remote, rest, items) {
						out = append(out, remote+":"+c)
					}
				}
				break
			}
			for _, n := range withPrefix(e.conf.Names(), toComplete) {
				out = append(out, n+":")
			}
			out = append(out, e.serverItems(cmd, e.conf.DefaultRemote, toComplete, items)...)
		case len(args) == 1 && strings.HasSuffix(args[0], ":"):
			out = e.serverItems(cmd, strings.TrimSuffix(args[0], ":"), toComplete, items)
		}
		directive := cobra.ShellCompDirectiveNoFileComp
		if slices.ContainsFunc(out, func(c cobra.Completion) bool { return strings.HasSuffix(c, ":") }) {
			directive |= cobra.ShellCompDirectiveNoSpace // a remote is followed by more
		}
		return out, directive
	}
}

// serverItems returns the items of remote that start with prefix, sorted;
// none when the remote cannot be asked quietly.
func (e *env) serverItems(cmd *cobra.Command, remote, prefix string, items func(context.Context, *cobra.Command, *client.Client) ([]cobra.Completion, error)) []cobra.Completion {
	if items == nil {
		return nil
	}
	c, ok := e.quietClient(remote)
	if !ok {
		return nil
	}
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, completionTimeout)
	defer cancel()
	cmd.SetContext(ctx)
	defer cmd.SetContext(parent)
	all, err := items(ctx, cmd, c)
	if err != nil {
		return nil
	}
	out := withPrefix(all, prefix)
	slices.Sort(out)
	return out
}

// quietClient connects to remote for a completion: nothing written to the
// terminal, no browser, and no client certificate generated.
func (e *env) quietClient(remote string) (*client.Client, bool) {
	r, ok := e.conf.Remote(remote)
	if !ok {
		return nil, false
	}
	if !strings.HasPrefix(r.Addr, "unix://") && !r.Public && r.AuthType != authOIDC {
		if crt, _ := e.conf.ClientCertPaths(); !fileExists(crt) {
			return nil, false
		}
	}
	q := *e
	q.stderr = io.Discard
	q.getenv = func(k string) string {
		if k == "BROWSER" {
			return ""
		}
		return e.getenv(k)
	}
	c, err := q.connect(remote)
	return c, err == nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// withPrefix returns the completions whose value starts with prefix.
func withPrefix(all []cobra.Completion, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range all {
		if value, _, _ := strings.Cut(c, "\t"); strings.HasPrefix(value, prefix) {
			out = append(out, c)
		}
	}
	return out
}
