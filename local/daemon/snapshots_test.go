package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestSnapshotRestart: a daemon stores a snapshot of its read model; after
// a restart it starts from the snapshot, replays only the tail, and trusts
// exactly what it trusted before.
func TestSnapshotRestart(t *testing.T) {
	t.Parallel()
	dir := dmShortDir(t)
	clock := newTestClock()
	often := func(c *daemon.Config) { c.SnapshotEvery, c.SnapshotInterval = 1, 20*time.Millisecond }
	td := dmStart(t, dir, clock, often)
	a, b := td.cert(t, "a"), td.cert(t, "b")
	td.trust(t, a, api.CertificatesPost{Name: "a"})
	want := td.lastSeq(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for td.d.Store().LastSnapshotSeq(ctx) < want {
		select {
		case <-ctx.Done():
			t.Fatalf("no snapshot at %d within 10 s:\n%s", want, td.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	td.d.Close()

	td2 := dmStart(t, dir, clock)
	if !strings.Contains(td2.log.String(), "read model restored from a snapshot") {
		t.Fatalf("restart did not use the snapshot:\n%s", td2.log)
	}
	if got := td2.server(t, td2.client(t, a)); got.Auth != "trusted" {
		t.Errorf("a after restart: %q", got.Auth)
	}
	if got := td2.server(t, td2.client(t, b)); got.Auth != "untrusted" {
		t.Errorf("b after restart: %q", got.Auth)
	}
	// Events after the snapshot are folded on top of it.
	td2.trust(t, b, api.CertificatesPost{Name: "b"})
	if got := td2.server(t, td2.client(t, b)); got.Auth != "trusted" {
		t.Errorf("b trusted after restart: %q", got.Auth)
	}
}
