package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// TestBinary builds the trustlog binary and runs it as a user would: the
// environment chooses the configuration directory, and a failure prints
// "Error: <message>" on stderr and exits 1.
func TestBinary(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "trustlog")
	build := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conf := filepath.Join(t.TempDir(), "conf")
	env := []string{"HOME=" + t.TempDir(), "TRUSTLOG_CONF=" + conf, "TRUSTLOG_DIR=" + t.TempDir()}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return out.String(), errOut.String(), exit.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return out.String(), errOut.String(), 0
	}

	for _, tc := range []struct {
		name           string
		args           []string
		stdout, stderr string
		code           int
	}{
		{name: "ok/get-default", args: []string{"remote", "get-default"}, stdout: "local\n"},
		{name: "ok/add unix remote", args: []string{"remote", "add", "sock", "/run/x.socket"}},
		{name: "ok/switch", args: []string{"remote", "switch", "sock"}},
		{name: "ok/new default", args: []string{"remote", "get-default"}, stdout: "sock\n"},
		{name: "fail/unknown remote", args: []string{"remote", "switch", "nope"}, stderr: "Error: The remote \"nope\" doesn't exist\n", code: 1},
		{name: "fail/remove default", args: []string{"remote", "remove", "sock"}, stderr: "Error: Can't remove the default remote\n", code: 1},
		{name: "fail/unknown command", args: []string{"frobnicate"}, stderr: "Error: unknown command \"frobnicate\" for \"trustlog\"\n", code: 1},
		{name: "fail/unknown subcommand", args: []string{"config", "trust", "lst"},
			stderr: "Error: unknown command \"lst\" for \"trustlog config trust\"\n\nDid you mean this?\n\tlist\n\n", code: 1},
		{name: "fail/unknown subcommand of remote", args: []string{"remote", "lst"},
			stderr: "Error: unknown command \"lst\" for \"trustlog remote\"\n\nDid you mean this?\n\tlist\n\n", code: 1},
		{name: "fail/bare word for a remote", args: []string{"info", "mysrv"},
			stderr: "Error: Invalid argument \"mysrv\": expected a remote, written \"<remote>:\" (remotes: local, sock)\n", code: 1},
		{name: "fail/bare word for a remote of trust list", args: []string{"config", "trust", "list", "sock"},
			stderr: "Error: Invalid argument \"sock\": a remote is written with a colon, \"sock:\"\n", code: 1},
	} {
		stdout, stderr, code := run(tc.args...)
		if stdout != tc.stdout || stderr != tc.stderr || code != tc.code {
			t.Errorf("%s: trustlog %v = %q, %q, exit %d; want %q, %q, exit %d", tc.name, tc.args, stdout, stderr, code, tc.stdout, tc.stderr, tc.code)
		}
	}
	stdout, stderr, code := run("--version")
	if !regexp.MustCompile(`^trustlog version \S+ \(API 1\.0\)\n$`).MatchString(stdout) || stderr != "" || code != 0 {
		t.Errorf("trustlog --version = %q, %q, exit %d", stdout, stderr, code)
	}
	if _, err := os.Stat(filepath.Join(conf, "config.yml")); err != nil {
		t.Errorf("config.yml not written under TRUSTLOG_CONF: %v", err)
	}
}
