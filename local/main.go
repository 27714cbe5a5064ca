// Command trustlogd is Trustlog's all-in-one server: an embedded NATS
// JetStream event store, the read model and every API function, served over
// HTTPS and a local unix socket.
//
//	go run ./local [--dir DIR] [--https-address HOST:PORT] [--sync always|interval:D] [--nats URL [--nats-creds FILE]]
//
// trustlogd --help lists every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/trustlog/trustlog/local/daemon"
	"github.com/trustlog/trustlog/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// usage prints the help of --help.
func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: trustlogd [flags]

trustlogd is Trustlog's all-in-one server: an embedded NATS JetStream event
store, the read model and every API function, served over HTTPS and a local
unix socket (<dir>/unix.socket). Flags take one dash or two.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Environment:
  TRUSTLOG_DIR           data directory when --dir is not given
                         (default $HOME/.local/share/trustlog)
  TRUSTLOG_INSECURE_TLS  set: accept TLS 1.2 clients too (default: TLS 1.3 only)
`)
}

// run parses flags and the environment, starts the daemon and serves until
// ctx ends. --help and --version print to stdout and return nil.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("trustlogd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is returned; --help is printed below
	var (
		cfg                  daemon.Config
		verbose, showVersion bool
	)
	fs.StringVar(&cfg.Dir, "dir", defaultDir(getenv), "data directory (env TRUSTLOG_DIR)")
	fs.StringVar(&cfg.HTTPSAddress, "https-address", "", "set this member's core.https_address, the HTTPS listen address (default 127.0.0.1:8443)")
	fs.StringVar(&cfg.Member, "member", "", "name of this instance among those sharing the event log, for its own core.https_address and acme.http.port (default: --nats-name, else a name kept in <dir>/member)")
	fs.TextVar(&cfg.Sync, "sync", daemon.SyncPolicy{}, "when the embedded NATS server syncs writes to disk: always (before acknowledging each) or interval:<duration> (faster; a power failure or OS crash can lose that long of acknowledged writes)")
	fs.StringVar(&cfg.NATSURL, "nats", "", "external NATS server or cluster URL(s); default: embedded server in <dir>/nats")
	fs.StringVar(&cfg.NATSCreds, "nats-creds", "", "credentials file for --nats")
	fs.StringVar(&cfg.NATSMonitor, "nats-monitor", "", "comma-separated monitoring endpoints (http://host:8222) of the --nats servers, to check that they sync writes to disk")
	fs.IntVar(&cfg.Replicas, "replicas", 0, "stream replicas on an external cluster (3 for a 3-node cluster)")
	fs.StringVar(&cfg.ACMEHTTPAddress, "acme-http-address", "", "where this instance answers ACME HTTP-01 challenges on plain HTTP (default: the acme.http.port key; - for nowhere)")
	fs.StringVar(&cfg.NATSName, "nats-name", "", "name of the embedded NATS server in a cluster of trustlogd instances")
	fs.StringVar(&cfg.NATSCluster, "nats-cluster", "", "host:port of the embedded NATS server's cluster (route) listener")
	fs.StringVar(&cfg.NATSRoutes, "nats-routes", "", "comma-separated route addresses (host:port) of the cluster's members")
	fs.StringVar(&cfg.NATSClusterSecretFile, "nats-cluster-secret-file", "", "file (mode 0600) holding the secret the cluster's routes authenticate with; the same on every member")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "", "let other services read the event stream: the embedded NATS server listens on host:port, with a read-only user written to <dir>/subscriber.url")
	fs.StringVar(&cfg.Upstream, "upstream", "", "put an HTTP API behind Trustlog: http(s)://host:port[/base] or unix:/path; authenticated requests for other paths are proxied with X-Trustlog-* identity headers")
	fs.BoolVar(&verbose, "verbose", false, "log debug messages too (default: info and above)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return nil
		}
		return fmt.Errorf("%w (trustlogd --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if showVersion {
		fmt.Fprintln(stdout, "trustlogd version", version.String())
		return nil
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.InsecureTLS = getenv("TRUSTLOG_INSECURE_TLS") != ""
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	return d.Close()
}

func defaultDir(getenv func(string) string) string {
	if d := getenv("TRUSTLOG_DIR"); d != "" {
		return d
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "trustlog")
	}
	return "trustlog"
}
