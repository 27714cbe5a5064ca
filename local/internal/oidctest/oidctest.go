// Package oidctest starts a real OpenID Connect provider for tests: the
// oidcprovider command of tools/incus (Incus's mini-oidc storage served by
// zitadel/oidc), built once into the tool cache and run as a process bound
// to 127.0.0.1 on a port the kernel picks. It approves every device
// authorization as the current user, which a test sets with SetUser.
package oidctest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// ClientID is the provider's only client: public, device and refresh grants.
const ClientID = "device"

// Options tune the provider; zero values take the defaults in brackets.
type Options struct {
	// AccessTTL is the access-token lifetime [5m].
	AccessTTL time.Duration
	// RefreshTTL is the refresh-token lifetime [5h].
	RefreshTTL time.Duration
	// PollInterval is the device-flow poll interval [1s].
	PollInterval time.Duration
}

// Provider is a running provider.
type Provider struct {
	// Issuer is the issuer URL, with its trailing slash.
	Issuer string
	// Binary is the provider executable, for tests that start more.
	Binary string

	userFile string
}

// Binary returns the provider executable, building it on first use.
func Binary(t testing.TB) string {
	t.Helper()
	return toolbin.Build(t, "tools/incus", "github.com/trustlog/trustlog/tools/incus/oidcprovider", "oidcprovider")
}

// Start runs a provider until the test ends.
func Start(t testing.TB, o Options) *Provider {
	t.Helper()
	bin := Binary(t)
	p := &Provider{Binary: bin, userFile: filepath.Join(t.TempDir(), "user")}
	args := []string{"-addr", "127.0.0.1:0", "-user-file", p.userFile}
	if o.AccessTTL > 0 {
		args = append(args, "-access-ttl", o.AccessTTL.String())
	}
	if o.RefreshTTL > 0 {
		args = append(args, "-refresh-ttl", o.RefreshTTL.String())
	}
	if o.PollInterval > 0 {
		args = append(args, "-poll-interval", o.PollInterval.String())
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("oidctest: start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		for sc.Scan() { // keep draining so the provider never blocks on stdout
		}
	}()
	select {
	case line := <-first:
		issuer, ok := strings.CutPrefix(line, "issuer ")
		if !ok {
			t.Fatalf("oidctest: unexpected first line %q", line)
		}
		p.Issuer = issuer
	case <-time.After(30 * time.Second):
		t.Fatal("oidctest: provider did not start within 30 s")
	}
	return p
}

// SetUser makes the provider approve later device authorizations (and
// answer token refreshes) as name.
func (p *Provider) SetUser(t testing.TB, name string) {
	t.Helper()
	if err := os.WriteFile(p.userFile, []byte(name+"\n"), 0o600); err != nil {
		t.Fatalf("oidctest: %v", err)
	}
}
