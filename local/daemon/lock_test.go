package daemon_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestDataDirLocked: a second daemon on a data directory in use is
// refused before it touches anything, with an error naming the first's
// pid; the first keeps its listeners, its socket and its address; once it
// is closed, a new daemon starts there.
func TestDataDirLocked(t *testing.T) {
	t.Parallel()
	dir, clock := dmShortDir(t), newTestClock()
	td := dmStart(t, dir, clock)
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{Name: "admin"})
	seq, addr := td.lastSeq(t), td.d.HTTPSAddr()

	second, logs, err := dmTryStart(dir, clock)
	if err == nil {
		second.Close()
		t.Fatal("a second daemon started on a data directory in use")
	}
	if !errors.Is(err, daemon.ErrDirInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second start: %v, want ErrDirInUse naming pid %d\n%s", err, os.Getpid(), logs)
	}

	if _, err := os.Stat(filepath.Join(dir, "unix.socket")); err != nil {
		t.Errorf("the first daemon's socket: %v", err)
	}
	if c, err := net.Dial("unix", filepath.Join(dir, "unix.socket")); err != nil {
		t.Errorf("the first daemon's socket does not answer: %v", err)
	} else {
		c.Close()
	}
	td.must(t, 200, nil, "GET", "/1.0", nil)
	td.must(t, 200, td.client(t, admin), "GET", "/1.0", nil)
	if got := td.lastSeq(t); got != seq || td.d.HTTPSAddr() != addr {
		t.Errorf("after the refused start: stream at %d (want %d), HTTPS on %s (want %s)", got, seq, td.d.HTTPSAddr(), addr)
	}

	if err := td.d.Close(); err != nil {
		t.Fatal(err)
	}
	td = dmStart(t, dir, clock)
	td.must(t, 200, td.client(t, admin), "GET", "/1.0", nil)
}
