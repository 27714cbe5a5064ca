package daemon_test

// Durability of acknowledged trust changes: the NATS store lives on
// lazyfs, which keeps every byte not yet fsynced in memory and drops it on
// a power cut, so the test sees the fsyncs the strace of issue 17 looked
// for, and what a power cut leaves.

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/faults/lazyfs"
)

// dmLazyStore mounts lazyfs at <dir>/nats, where the daemon keeps its
// embedded NATS store, backed by a directory of its own. It is unmounted
// when the test ends, after the daemons started later are closed. Without
// root or /dev/fuse the test is skipped (CI runs as root with FUSE).
func dmLazyStore(t *testing.T, dir string) (*lazyfs.FS, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lazyfs: mounting a FUSE file system needs root (euid is not 0)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("lazyfs: mounting needs /dev/fuse: %v", err)
	}
	backing := t.TempDir()
	mnt := filepath.Join(dir, "nats")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	lfs, err := lazyfs.Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lfs.Unmount(); err != nil {
			t.Errorf("unmount lazyfs: %v", err)
		}
	})
	return lfs, backing
}

// TestTrustRemovalSyncedBeforeAck is the must-show of issue 17: a trust
// removal is acknowledged only after an fsync of the stream's store, and
// so a power cut right after the acknowledgement does not bring the
// certificate back.
func TestTrustRemovalSyncedBeforeAck(t *testing.T) {
	dir := dmShortDir(t)
	lfs, backing := dmLazyStore(t, dir)
	clock := newTestClock()
	td := dmStart(t, dir, clock)
	c := td.cert(t, "removed")
	td.trust(t, c, api.CertificatesPost{Name: "removed"})
	// The certificate has been trusted for a while: its addition is on
	// disk whatever the daemon syncs.
	if err := lfs.Sync(); err != nil {
		t.Fatal(err)
	}

	streams, err := filepath.Glob(filepath.Join(backing, "jetstream", "*", "streams", "TRUSTLOG"))
	if err != nil || len(streams) != 1 {
		t.Fatalf("the TRUSTLOG stream's directory in the store: %v %v", streams, err)
	}
	rel, err := filepath.Rel(backing, streams[0])
	if err != nil {
		t.Fatal(err)
	}
	prefix := rel + "/"
	before := lfs.Syncs(prefix)
	td.must(t, 200, nil, "DELETE", "/1.0/certificates/"+c.FP, nil)
	if after := lfs.Syncs(prefix); after <= before {
		t.Errorf("DELETE /1.0/certificates/<fp> was acknowledged with no fsync of %s in between (%d fsyncs before the request, %d after the reply)",
			prefix, before, after)
	}

	// The power goes right after the reply: the daemon's shutdown writes
	// nothing more, and it starts again on what was on disk.
	lfs.PowerCut()
	td.d.Close()
	lfs.Thaw()
	td2 := dmStart(t, dir, clock)
	if rep := td2.call(t, nil, "GET", "/1.0/certificates/"+c.FP, nil); rep.Code != 404 {
		t.Errorf("after a power cut, the certificate whose removal was acknowledged: %s, want 404", rep)
	}
}
