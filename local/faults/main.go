// Command faults is Trustlog's fault-injection harness: it runs a cluster of
// real trustlogd processes, each in its own network namespace with its
// event store on a file system that can lose power (lazyfs), drives a
// workload of trust changes, token redemptions, CRL updates and
// authenticated requests through their APIs, injects crashes, pauses,
// partitions, power loss and corruption on a schedule, records every
// operation as a history, and checks it: no acknowledged change lost, no
// token redeemed twice, no certificate admitted past the staleness bound
// after its removal or revocation was acknowledged, redemptions and trust
// changes linearizable.
//
//	go run ./local/faults run [-profile ci|long] [-seed N] [-out DIR]
//	go run ./local/faults check DIR/history.jsonl
//	go run ./local/faults clean [-out DIR]
//
// It needs root (network namespaces, FUSE). docs/faults.md describes the
// faults, the checker's rules and a long run's results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/trustlog/trustlog/local/faults/check"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "faults:", err)
		}
		os.Exit(1)
	}
}

// defaultOut is where runs keep their files unless told otherwise.
func defaultOut() string { return filepath.Join(os.TempDir(), "trustlog-faults") }

// Run runs one subcommand.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: faults run|check|clean [flags]")
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr)
	case "check":
		return checkCommand(args[1:], stdout, stderr)
	case "clean":
		fs := flag.NewFlagSet("faults clean", flag.ContinueOnError)
		fs.SetOutput(stderr)
		out := fs.String("out", defaultOut(), "run directory")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return clean(*out)
	case "workload":
		return workloadCommand(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown subcommand %q (run, check, clean)", args[0])
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("faults run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("profile", "ci", "ci (short, one of each fault) or long")
	seed := fs.Uint64("seed", 1, "seed of the schedule and the workload")
	out := fs.String("out", defaultOut(), "run directory (history, logs, data); emptied first")
	repo := fs.String("repo", ".", "the Trustlog repository to build trustlogd from")
	duration := fs.Duration("duration", 0, "length of a random schedule (long profile); 0 keeps the profile's")
	sync := fs.String("sync", "", "trustlogd's --sync for every node (always, interval:D); empty keeps trustlogd's default (always)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, ok := profiles[*name]
	if !ok {
		return fmt.Errorf("unknown profile %q (ci, long)", *name)
	}
	if *duration > 0 {
		p.duration = *duration
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(abs); err != nil && !errors.Is(err, os.ErrNotExist) {
		// A mount left by a killed run: clean it, then try again.
		if cerr := clean(abs); cerr != nil {
			return errors.Join(err, cerr)
		}
		if err := os.RemoveAll(abs); err != nil {
			return err
		}
	}
	start := time.Now()
	hist, err := run(ctx, runConfig{profile: p, seed: *seed, out: abs, repo: *repo, sync: *sync, log: stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "run of %s: history in %s\n", time.Since(start).Round(time.Second), hist)
	return checkCommand([]string{hist}, stdout, stderr)
}

func checkCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("faults check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bound := fs.Duration("staleness", 2*maxStaleness, "how long after an acknowledged removal a node may still admit the certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: faults check [-staleness D] history.jsonl")
	}
	rep, err := check.CheckFile(fs.Arg(0), check.Config{StalenessBound: *bound})
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.String())
	if !rep.OK() {
		return errors.New("the history breaks Trustlog's promises (above)")
	}
	return nil
}
