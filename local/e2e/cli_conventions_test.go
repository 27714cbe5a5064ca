package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// cliRun runs a client binary and returns its stdout, stderr and exit
// status.
func cliRun(t *testing.T, env []string, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// TestCLIConventionsBesideIncus runs the trustlog binary and the stock
// incus client side by side, each with the same trustlogd as its default
// remote, and checks that trustlog answers as incus does: an unknown
// subcommand at any depth is an error (exit 1) in the same words, with
// the same suggestion; a remote that does not exist is the same error;
// `query --raw /1.0/metrics` prints the Prometheus text. Where incus
// silently ignores a word (`config trust list nosuch` lists the default
// remote), trustlog refuses it: see cli/README.md.
func TestCLIConventionsBesideIncus(t *testing.T) {
	t.Parallel()
	s := start(t)
	ic := newIncus(t)
	ic.must(t, "remote", "add", "s", strings.TrimSpace(trustlogCLI(t, s, t.TempDir(), "config", "trust", "add", "--name", "incus", "-q")))
	ic.must(t, "remote", "switch", "s")

	bin := toolbin.Build(t, ".", toolbin.Module+"/cli", "trustlog-e2e")
	home := t.TempDir()
	env := []string{"HOME=" + home, "TRUSTLOG_CONF=" + filepath.Join(home, "conf"), "TRUSTLOG_DIR=" + t.TempDir()}
	tok := strings.TrimSpace(trustlogCLI(t, s, t.TempDir(), "config", "trust", "add", "--name", "trustlog", "-q"))
	for _, args := range [][]string{{"remote", "add", "s", tok}, {"remote", "switch", "s"}} {
		if _, errOut, code := cliRun(t, env, bin, args...); code != 0 {
			t.Fatalf("trustlog %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		same string // "stderr", "first stderr line", "first stdout line" or "" (exit status only)
	}{
		{name: "unknown command", args: []string{"remot"}, code: 1, same: "stderr"},
		{name: "unknown subcommand", args: []string{"config", "trust", "lst"}, code: 1, same: "first stderr line"},
		{name: "unknown subcommand of remote", args: []string{"remote", "lst"}, code: 1, same: "first stderr line"},
		{name: "group alone prints its usage", args: []string{"config", "trust"}, code: 0},
		{name: "unknown remote", args: []string{"info", "nosuch:"}, code: 1, same: "stderr"},
		{name: "bare word", args: []string{"info", "nosuch"}, code: 1},
		{name: "metrics", args: []string{"query", "--raw", "/1.0/metrics"}, code: 0, same: "first stdout line"},
		{name: "metrics without --raw", args: []string{"query", "/1.0/metrics"}, code: 0, same: "first stdout line"},
	} {
		iOut, iErr, iCode := cliRun(t, ic.env, ic.bin, tc.args...)
		tOut, tErr, tCode := cliRun(t, env, bin, tc.args...)
		if iCode != tc.code || tCode != tc.code {
			t.Errorf("%s: exit incus %d, trustlog %d; want %d\nincus: %s\ntrustlog: %s", tc.name, iCode, tCode, tc.code, iErr, tErr)
			continue
		}
		var i, tl string
		switch tc.same {
		case "stderr":
			i, tl = iErr, tErr
		case "first stderr line":
			i, _, _ = strings.Cut(iErr, "\n")
			tl, _, _ = strings.Cut(tErr, "\n")
		case "first stdout line":
			i, _, _ = strings.Cut(iOut, "\n")
			tl, _, _ = strings.Cut(tOut, "\n")
		}
		if strings.ReplaceAll(i, "incus", "trustlog") != tl {
			t.Errorf("%s: incus says %q, trustlog %q", tc.name, i, tl)
		}
	}
	if _, errOut, code := cliRun(t, env, bin, "config", "trust", "list", "nosuch"); code != 1 || !strings.HasPrefix(errOut, `Error: Invalid argument "nosuch"`) {
		t.Errorf("trustlog config trust list nosuch: exit %d, %q", code, errOut)
	}
}
