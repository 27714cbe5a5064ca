package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// TestSyncFlag: --sync takes always or interval:<duration>, and is
// refused for an external NATS cluster, whose servers have their own
// configuration; both before anything starts.
func TestSyncFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "fail/unknown policy", args: []string{"--sync", "sometimes"}, want: `invalid value "sometimes" for flag -sync`},
		{name: "fail/interval without unit", args: []string{"--sync", "interval:5"}, want: "invalid value"},
		{name: "fail/interval too long", args: []string{"--sync", "interval:1h"}, want: "want 1ms to 10m0s"},
		{name: "fail/interval with --nats", args: []string{"--sync", "interval:1s", "--nats", "nats://127.0.0.1:1"}, want: "with --nats, set jetstream { sync_interval }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"--dir", t.TempDir()}, tc.args...)
			err := run(context.Background(), args, &stdout, &stderr, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	_ = run(context.Background(), []string{"--help"}, &stdout, &stderr, func(string) string { return "" })
	if !strings.Contains(stdout.String(), "-sync value") || !strings.Contains(stdout.String(), "(default always)") {
		t.Errorf("--help does not show --sync and its default:\n%s", stdout.String())
	}
}

var update = flag.Bool("update", false, "rewrite testdata/help.txt")

// TestHelpAndVersion: --help (and -h) prints the usage, every flag and
// the environment on stdout and succeeds; --version prints the build and
// API versions; both before anything starts. The help is a golden file.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"--verbose", "--help"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr, noEnv); err != nil {
			t.Fatalf("trustlogd %v: %v", args, err)
		}
		if stderr.Len() != 0 {
			t.Errorf("trustlogd %v wrote on stderr: %q", args, stderr.String())
		}
		golden := filepath.Join("testdata", "help.txt")
		if *update {
			if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
			t.Errorf("trustlogd %v (-want +got):\n%s", args, diff)
		}
	}
	help, _ := os.ReadFile(filepath.Join("testdata", "help.txt"))
	for _, f := range []string{"-verbose", "-version", "-dir", "-https-address", "-upstream", "TRUSTLOG_DIR", "TRUSTLOG_INSECURE_TLS"} {
		if !strings.Contains(string(help), "  "+f) {
			t.Errorf("the help does not document %s", f)
		}
	}

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &stdout, &stderr, noEnv); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^trustlogd version \S+ \(API 1\.0\)\n$`).MatchString(stdout.String()) || stderr.Len() != 0 {
		t.Errorf("--version: stdout %q, stderr %q", stdout.String(), stderr.String())
	}

	err := run(context.Background(), []string{"--no-such-flag"}, &stdout, &stderr, noEnv)
	if err == nil || err.Error() != "flag provided but not defined: -no-such-flag (trustlogd --help lists the flags)" {
		t.Errorf("unknown flag: %v", err)
	}
}

// TestBinaryHelpExitsZero runs the trustlogd binary (built once into the
// toolbin cache) as a user would: --help and --version exit 0 with their
// text on stdout.
func TestBinaryHelpExitsZero(t *testing.T) {
	t.Parallel()
	bin := toolbin.Build(t, ".", toolbin.Module+"/local", "trustlogd-help")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		arg, prefix string
	}{
		{arg: "--help", prefix: "Usage: trustlogd [flags]\n"},
		{arg: "--version", prefix: "trustlogd version "},
	} {
		cmd := exec.CommandContext(ctx, bin, tc.arg)
		cmd.Env = []string{"HOME=" + t.TempDir()}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("trustlogd %s: %v\n%s", tc.arg, err, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), tc.prefix) || stderr.Len() != 0 {
			t.Errorf("trustlogd %s: stdout %.80q, stderr %q", tc.arg, stdout.String(), stderr.String())
		}
	}
}
