// Package command implements the trustlog commands, which behave like
// their incus and lxc counterparts: remotes, server info, trust store,
// tokens, server configuration, PKI and raw queries.
package command

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/trustlog/trustlog/cli/client"
	"github.com/trustlog/trustlog/cli/config"
	"github.com/trustlog/trustlog/version"
)

// env is what every command runs with. Only Run's caller reads the real
// environment; commands use getenv.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	in     *bufio.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	conf   *config.Config
}

// Run executes the trustlog command line args.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	e := &env{ctx: ctx, stdin: stdin, in: bufio.NewReader(stdin), stdout: stdout, stderr: stderr, getenv: getenv}
	root := e.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// rootCmd builds the whole command tree.
func (e *env) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "trustlog",
		Short:         "Manage Trustlog servers: remotes, trust, tokens, PKI",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.HasSubCommands() {
				return nil // a group only prints its help
			}
			return e.load()
		},
	}
	root.AddCommand(e.remoteCmd(), e.infoCmd(), e.configCmd(), e.queryCmd(), e.pkiCmd(), e.authCmd(), e.auditCmd(), e.monitorCmd())
	root.InitDefaultCompletionCmd()
	finish(root)
	return root
}

// finish walks the command tree once it is built: every group refuses an
// unknown subcommand (see unknownSubcommand), and every --format flag
// completes to the values its usage lists.
func finish(cmd *cobra.Command) {
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = unknownSubcommand
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	if f := cmd.Flags().Lookup("format"); f != nil {
		values := listedValues(f.Usage)
		_ = cmd.RegisterFlagCompletionFunc("format", func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return withPrefix(values, toComplete), cobra.ShellCompDirectiveNoFileComp
		})
	}
	for _, sub := range cmd.Commands() {
		finish(sub)
	}
}

// unknownSubcommand is the Args of a command group: without arguments the
// group prints its help; any argument is a subcommand that does not exist,
// an error naming the nearest subcommands, as incus and cobra's root say
// it. (cobra itself only checks the root: a group given an unknown word
// prints its help and succeeds.)
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	var hint strings.Builder
	if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
		hint.WriteString("\n\nDid you mean this?\n")
		for _, s := range near {
			fmt.Fprintf(&hint, "\t%s\n", s)
		}
	}
	return fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), hint.String())
}

// listedValues returns the values a flag's usage lists in its last
// parentheses: "output format (table, json, yaml)" lists table, json and
// yaml.
func listedValues(usage string) []string {
	open, end := strings.LastIndex(usage, "("), strings.LastIndex(usage, ")")
	if open < 0 || end < open {
		return nil
	}
	var out []string
	for v := range strings.SplitSeq(usage[open+1:end], ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// load reads the configuration directory, once.
func (e *env) load() error {
	if e.conf != nil {
		return nil
	}
	if e.getenv("TRUSTLOG_CONF") == "" && e.getenv("HOME") == "" {
		return errors.New("Can't find the configuration directory: set TRUSTLOG_CONF or HOME")
	}
	conf, err := config.Load(e.confDir(), e.socketPath())
	if err != nil {
		return err
	}
	e.conf = conf
	return nil
}

func (e *env) confDir() string {
	if d := e.getenv("TRUSTLOG_CONF"); d != "" {
		return d
	}
	return filepath.Join(e.getenv("HOME"), ".config", "trustlog")
}

func (e *env) socketPath() string {
	if d := e.getenv("TRUSTLOG_DIR"); d != "" {
		return filepath.Join(d, "unix.socket")
	}
	return filepath.Join(e.getenv("HOME"), ".local", "share", "trustlog", "unix.socket")
}

func (e *env) insecureTLS() bool { return e.getenv("TRUSTLOG_INSECURE_TLS") != "" }

// connect returns a client for the named remote.
func (e *env) connect(name string) (*client.Client, error) {
	r, ok := e.conf.Remote(name)
	if !ok {
		return nil, fmt.Errorf("The remote %q doesn't exist", name)
	}
	opts := client.Options{Addr: r.Addr, Remote: name, PinPath: e.conf.ServerCertPath(name), InsecureTLS: e.insecureTLS()}
	if strings.HasPrefix(r.Addr, "unix://") {
		return client.New(opts)
	}
	switch {
	case r.AuthType == authOIDC:
		opts.OIDC = e.oidcOptions(name)
	case !r.Public:
		cert, err := e.conf.ClientCertificate(e.stderr)
		if err != nil {
			return nil, err
		}
		opts.Certificate = &cert
	}
	pinned, err := e.conf.ServerCert(name)
	if err != nil {
		return nil, err
	}
	opts.Pinned = pinned
	if opts.Roots, err = e.conf.ClientCA(); err != nil {
		return nil, err
	}
	return client.New(opts)
}

// Authentication types of remotes.
const (
	authTLS  = "tls"
	authOIDC = "oidc"
)

// oidcOptions configures the OIDC login of remote name: tokens in
// oidctokens/<name>.json, instructions on stderr, $BROWSER to open the URL.
func (e *env) oidcOptions(name string) *client.OIDC {
	return &client.OIDC{TokenFile: e.conf.OIDCTokensPath(name), Notify: e.stderr, Browser: e.getenv("BROWSER")}
}

// remoteArg splits an optional "remote:" argument off args.
func (e *env) remoteArg(args []string) (string, []string, error) {
	if len(args) > 0 && strings.HasSuffix(args[0], ":") {
		name := strings.TrimSuffix(args[0], ":")
		if _, ok := e.conf.Remote(name); !ok {
			return "", nil, fmt.Errorf("The remote %q doesn't exist", name)
		}
		return name, args[1:], nil
	}
	return e.conf.DefaultRemote, args, nil
}

// remoteArgs is the Args of a command that takes "[<remote>:]" and then
// min to max other arguments. A remote is always written with its colon:
// when the arguments fill every place, the first must be "<remote>:", so
// a bare word where only a remote fits ("info srv", "config trust list
// nosuch") is an error rather than a silent use of the default remote.
func (e *env) remoteArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(min, max+1)(cmd, args); err != nil {
			return err
		}
		if len(args) == max+1 && !strings.HasSuffix(args[0], ":") {
			return e.notARemote(args[0])
		}
		return nil
	}
}

// notARemote is the error for a bare word where a remote is expected. The
// configuration is read here, before the command's own checks, to name
// the remotes.
func (e *env) notARemote(arg string) error {
	if err := e.load(); err != nil {
		return err
	}
	if _, ok := e.conf.Remote(arg); ok {
		return fmt.Errorf("Invalid argument %q: a remote is written with a colon, %q", arg, arg+":")
	}
	return fmt.Errorf("Invalid argument %q: expected a remote, written \"<remote>:\" (remotes: %s)", arg, strings.Join(e.conf.Names(), ", "))
}

// remoteClient splits an optional "remote:" argument off args and
// connects to that remote (or the default one).
func (e *env) remoteClient(args []string) (*client.Client, []string, error) {
	name, rest, err := e.remoteArg(args)
	if err != nil {
		return nil, nil, err
	}
	c, err := e.connect(name)
	return c, rest, err
}

// prompt asks a question on stderr and reads one line of stdin. On a
// terminal the user's Enter ends the line; when stdin is not a terminal
// (piped or redirected answers, which are never echoed: a token is a
// secret), the prompt ends the line itself, so a log shows one prompt a
// line.
func (e *env) prompt(question string) (string, error) {
	fmt.Fprint(e.stderr, question)
	line, err := e.in.ReadString('\n')
	if !e.stdinIsTerminal() {
		fmt.Fprintln(e.stderr)
	}
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// stdinIsTerminal reports whether stdin is an interactive terminal.
func (e *env) stdinIsTerminal() bool {
	f, ok := e.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func formatFlag(cmd *cobra.Command, f *string) {
	cmd.Flags().StringVarP(f, "format", "f", formatTable, "output format (table, json, yaml, csv)")
}
