package e2e_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestStaleFailsClosed: an instance cut off from NATS keeps answering
// until core.max_staleness has passed without contact, then refuses
// authenticated requests with 503; the unix socket (local administration)
// and the untrusted view keep working, and no write half-happens.
func TestStaleFailsClosed(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := newServer(t, d, nil)
	s.storeAt(ns.StoreDir()) // the stream's files, for the secret scan once ns is down
	if code, env := s.configure(t, map[string]string{"core.max_staleness": "1s"}); code != 200 {
		t.Fatalf("set core.max_staleness: %d %s", code, env.Error)
	}
	if code, _ := s.configure(t, map[string]string{"core.max_staleness": "10ms"}); code != 400 {
		t.Errorf("core.max_staleness 10ms = %d, want 400", code)
	}
	pair, cert := newCert(t, "", "client")
	s.trust(t, cert, "client")
	c := tlsClient(&pair)
	base := "https://" + d.HTTPSAddr()
	if code, _ := do(t, c, "GET", base+"/1.0/certificates", nil); code != 200 {
		t.Fatalf("before the cut: %d", code)
	}
	seq := s.lastSeq(t)
	ns.Shutdown() // the instance loses the stream
	ns.WaitForShutdown()

	deadline := time.Now().Add(15 * time.Second)
	for {
		code, env := do(t, c, "GET", base+"/1.0/certificates", nil)
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(env.Error, "lost contact with the event stream") {
				t.Errorf("503 text: %q", env.Error)
			}
			break
		}
		if code != 200 || time.Now().After(deadline) {
			t.Fatalf("after the cut: %d %q (want 200 until the bound, then 503)", code, env.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The untrusted view and the unix socket still answer.
	if code, env := do(t, tlsClient(nil), "GET", base+"/1.0", nil); code != 200 || serverOf(t, env).Auth != "untrusted" {
		t.Errorf("untrusted GET /1.0 while stale: %d", code)
	}
	if code, _ := s.call(t, "GET", "/1.0/certificates", nil); code != 200 {
		t.Errorf("unix socket while stale: %d", code)
	}
	// A write is refused before it is tried, so nothing half-happens.
	if code, _ := do(t, c, "PATCH", base+"/1.0", api.ServerPut{Config: map[string]string{"user.x": "1"}}); code != http.StatusServiceUnavailable {
		t.Errorf("a write while stale: %d, want 503", code)
	}
	if got := d.Model().Seq(); got != seq {
		t.Errorf("the model moved from %d to %d without the stream", seq, got)
	}
}
