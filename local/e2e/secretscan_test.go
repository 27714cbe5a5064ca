package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustlog/trustlog/local/daemon"
)

// tbRecorder is a testing.TB that records errors instead of failing the
// test, to watch the secret scan fail. Everything else goes to the test.
type tbRecorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *tbRecorder) Error(args ...any) { r.record(fmt.Sprint(args...)) }

func (r *tbRecorder) Errorf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }

func (r *tbRecorder) record(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, msg)
}

// errors returns the errors recorded so far.
func (r *tbRecorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// scanned runs the secret scan of s with a recorder and returns its errors.
func scanned(t *testing.T, s *server) []string {
	t.Helper()
	rec := &tbRecorder{TB: t}
	s.scanForSecrets(rec)
	return rec.errors()
}

// startUnscanned starts a daemon wrapped like newServer does, but without
// the scan at the end of the test: the test runs the scan itself.
func startUnscanned(t *testing.T) *server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &server{d: d, admin: unixClient(d.UnixSocket()), log: &bytes.Buffer{}}
}

// TestSecretScan plants a fake private key and a token secret in the event
// log (as config values) and watches the scan find both: in the stream
// while the daemon runs, and in the store's files once it is closed. With
// the files gone too, the scan fails rather than giving up. A daemon with
// nothing planted passes both ways.
func TestSecretScan(t *testing.T) {
	t.Parallel()
	const fakeKey = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n"
	const secret = "planted-token-secret-4f9c2a"

	clean := startUnscanned(t)
	clean.configure(t, map[string]string{"user.note": "nothing to see"})
	if errs := scanned(t, clean); len(errs) != 0 {
		t.Errorf("clean daemon, from the stream: %q", errs)
	}
	clean.d.Close()
	if errs := scanned(t, clean); len(errs) != 0 {
		t.Errorf("clean daemon, from the files: %q", errs)
	}

	s := startUnscanned(t)
	if code, env := s.configure(t, map[string]string{"user.key": fakeKey, "user.code": secret}); code != 200 {
		t.Fatalf("plant: %d %s", code, env.Error)
	}
	s.secrets = append(s.secrets, secret)
	want := func(from string, errs []string) {
		t.Helper()
		key := slices.ContainsFunc(errs, func(e string) bool { return strings.HasSuffix(e, "holds a private key") })
		tok := slices.ContainsFunc(errs, func(e string) bool { return strings.HasSuffix(e, "holds a token secret") })
		if !key || !tok {
			t.Errorf("from %s: the scan reported %q, want the private key and the token secret", from, errs)
		}
	}
	want("the stream", scanned(t, s))
	s.d.Close()
	want("the files", scanned(t, s))

	if err := os.RemoveAll(filepath.Join(filepath.Dir(s.d.UnixSocket()), "nats")); err != nil {
		t.Fatal(err)
	}
	errs := scanned(t, s)
	if len(errs) != 1 || !strings.Contains(errs[0], "the stream is unreachable") {
		t.Errorf("neither stream nor files: the scan reported %q, want one failure", errs)
	}
}
