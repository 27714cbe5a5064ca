package lazyfs_test

// The file system mounted for real (root and /dev/fuse), driven through
// ordinary system calls on the mount, with the backing directory read
// directly to see what a power cut would leave.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trustlog/trustlog/local/faults/lazyfs"
)

// needFUSE skips the test where mounting is impossible. It is the one
// skip in these tests: CI runs them as root with /dev/fuse.
func needFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lazyfs: mounting a FUSE file system needs root (euid is not 0)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("lazyfs: mounting needs /dev/fuse: %v", err)
	}
}

// mounted is a lazy file system under test.
type mounted struct {
	fs      *lazyfs.FS
	backing string // the backing directory
	mnt     string // the mount point
}

// mount mounts a lazy mirror of a fresh directory; it is unmounted when
// the test ends.
func mount(t *testing.T) *mounted {
	t.Helper()
	needFUSE(t)
	m := &mounted{backing: t.TempDir(), mnt: t.TempDir()}
	m.remount(t)
	return m
}

// remount mounts m.backing on m.mnt (again).
func (m *mounted) remount(t *testing.T) {
	t.Helper()
	f, err := lazyfs.Mount(m.backing, m.mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	m.fs = f
}

// powerCut cuts the power and boots again.
func (m *mounted) powerCut() {
	m.fs.PowerCut()
	m.fs.Thaw()
}

func (m *mounted) path(name string) string { return filepath.Join(m.mnt, name) }

// open opens name on the mount; it is closed when the test ends.
func (m *mounted) open(t *testing.T, name string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(m.path(name), flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// create writes data to a new file name on the mount, then syncs it if
// sync is set, and closes it.
func (m *mounted) create(t *testing.T, name, data string, sync bool) {
	t.Helper()
	f := m.open(t, name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// read returns the content of name seen through the mount.
func (m *mounted) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(m.path(name))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(m.path(name))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(b)) {
		t.Fatalf("%s: stat says %d bytes, read gives %d", name, st.Size(), len(b))
	}
	return string(b)
}

// onDisk returns the content of name in the backing directory.
func (m *mounted) onDisk(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.backing, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func want(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
}

// TestReadBeforeSync: a writer, and any other reader of the mount, sees
// its bytes before any sync; the backing file does not have them.
func TestReadBeforeSync(t *testing.T) {
	m := mount(t)
	f := m.open(t, "a", os.O_CREATE|os.O_RDWR)
	if _, err := f.WriteString("hello, world"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, 7); err != nil {
		t.Fatal(err)
	}
	want(t, "read back through the writer's handle", string(buf), "world")
	want(t, "read through another handle", m.read(t, "a"), "hello, world")
	want(t, "backing file", m.onDisk(t, "a"), "")
	if got := m.fs.Pending(); got != 12 {
		t.Fatalf("Pending() = %d, want 12", got)
	}
	f.Close()
	want(t, "read after the writer closed", m.read(t, "a"), "hello, world")
}

// TestPowerCut: unsynced bytes are lost, synced ones survive, and a sync
// of one file does nothing for another; a fresh mount sees the same.
func TestPowerCut(t *testing.T) {
	m := mount(t)
	m.create(t, "synced", "durable", true)
	m.create(t, "unsynced", "volatile", false)
	// Synced, then more written: only the synced part survives.
	f := m.open(t, "half", os.O_CREATE|os.O_RDWR)
	f.WriteString("first")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.WriteString("+second")
	// fdatasync makes data durable as fsync does.
	g := m.open(t, "datasync", os.O_CREATE|os.O_RDWR)
	g.WriteString("data")
	if err := syscall.Fdatasync(int(g.Fd())); err != nil {
		t.Fatal(err)
	}

	m.powerCut()
	for name, content := range map[string]string{"synced": "durable", "unsynced": "", "half": "first", "datasync": "data"} {
		want(t, name+" after the power cut", m.read(t, name), content)
		want(t, name+" on disk", m.onDisk(t, name), content)
	}
	// The handle open across the cut reads what is left too.
	buf := make([]byte, 64)
	n, _ := f.ReadAt(buf, 0)
	want(t, "half through the handle open across the cut", string(buf[:n]), "first")
	if got := m.fs.Pending(); got != 0 {
		t.Fatalf("Pending() = %d after the power cut, want 0", got)
	}

	// A fresh mount of the same backing directory.
	m.create(t, "late", "unsynced again", false)
	m.fs.PowerCut()
	f.Close()
	g.Close()
	if err := m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	m.remount(t)
	want(t, "late on a fresh mount", m.read(t, "late"), "")
	want(t, "synced on a fresh mount", m.read(t, "synced"), "durable")
}

// TestSyncWrites: each write through a handle opened with O_SYNC or
// O_DSYNC is durable when it returns, and counts as a sync.
func TestSyncWrites(t *testing.T) {
	m := mount(t)
	for _, flag := range []int{os.O_SYNC, syscall.O_DSYNC} {
		name := fmt.Sprintf("f-%#x", flag)
		f := m.open(t, name, os.O_CREATE|os.O_WRONLY|flag)
		for _, s := range []string{"one", "two"} {
			if _, err := f.WriteString(s); err != nil {
				t.Fatal(err)
			}
		}
		want(t, name+" on disk after the writes", m.onDisk(t, name), "onetwo")
		if got := m.fs.Syncs(name); got != 2 {
			t.Errorf("Syncs(%s) = %d, want 2", name, got)
		}
	}
	m.powerCut()
	want(t, "after the power cut", m.read(t, fmt.Sprintf("f-%#x", os.O_SYNC)), "onetwo")
}

// TestFrozen: after a power cut and before Thaw nothing changes the
// backing directory, not even metadata, and Sync refuses; reads work.
func TestFrozen(t *testing.T) {
	m := mount(t)
	m.create(t, "a", "synced", true)
	f := m.open(t, "a", os.O_RDWR)
	m.fs.PowerCut()
	if _, err := f.WriteAt([]byte("X"), 0); !errors.Is(err, syscall.EIO) {
		t.Errorf("write while frozen: %v, want EIO", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync while frozen: %v, want EIO", err)
	}
	if err := f.Truncate(0); !errors.Is(err, syscall.EIO) {
		t.Errorf("truncate while frozen: %v, want EIO", err)
	}
	for what, op := range map[string]func() error{
		"create": func() error { _, err := os.Create(m.path("b")); return err },
		"mkdir":  func() error { return os.Mkdir(m.path("d"), 0o755) },
		"rename": func() error { return os.Rename(m.path("a"), m.path("c")) },
		"unlink": func() error { return os.Remove(m.path("a")) },
		"chmod":  func() error { return os.Chmod(m.path("a"), 0o600) },
		"link":   func() error { return os.Link(m.path("a"), m.path("e")) },
		"open with O_TRUNC": func() error {
			f, err := os.OpenFile(m.path("a"), os.O_WRONLY|os.O_TRUNC, 0)
			if err == nil {
				f.Close()
			}
			return err
		},
	} {
		if err := op(); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s while frozen: %v, want EIO", what, err)
		}
	}
	if err := m.fs.Sync(); !errors.Is(err, lazyfs.ErrFrozen) {
		t.Errorf("Sync while frozen: %v, want ErrFrozen", err)
	}
	want(t, "read while frozen", m.read(t, "a"), "synced")
	entries, err := os.ReadDir(m.backing)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("backing directory holds %d entries, want only a", len(entries))
	}
	m.fs.Thaw()
	if _, err := f.WriteAt([]byte("S"), 0); err != nil {
		t.Fatalf("write after Thaw: %v", err)
	}
	want(t, "after Thaw", m.read(t, "a"), "Synced")
}

// TestTruncateAndOffsets: writes past the end leave zeros, overwrite
// synced bytes without touching the disk, and a truncate drops pending
// bytes past the new size, even where it grows the file again.
func TestTruncateAndOffsets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		do        func(t *testing.T, f *os.File)
		read, cut string // through the mount before and after a power cut
	}{
		{"ok/write-past-end-leaves-zeros", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "zz", 10)
		}, "0123456789zz", "0123456789"},
		{"ok/hole-between", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "zz", 12)
		}, "0123456789\x00\x00zz", "0123456789"},
		{"ok/overwrite-synced", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "ab", 3)
		}, "012ab56789", "0123456789"},
		{"ok/truncate-shrinks-now", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "abcdef", 2)
			mustTruncate(t, f, 4)
		}, "01ab", "0123"},
		{"ok/truncate-drops-pending-past-size", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "tail", 10)
			mustTruncate(t, f, 12)
		}, "0123456789ta", "0123456789\x00\x00"},
		{"ok/shrink-then-grow-reads-zeros", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "abc", 3)
			mustTruncate(t, f, 4)
			mustTruncate(t, f, 8)
		}, "012a\x00\x00\x00\x00", "0123\x00\x00\x00\x00"},
		{"ok/write-after-shrink", func(t *testing.T, f *os.File) {
			mustTruncate(t, f, 2)
			mustWriteAt(t, f, "x", 5)
		}, "01\x00\x00\x00x", "01"},
		{"ok/sync-after-truncate", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "abcdef", 6)
			mustTruncate(t, f, 8)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}, "012345ab", "012345ab"},
		{"ok/open-trunc-drops-pending", func(t *testing.T, f *os.File) {
			mustWriteAt(t, f, "abc", 0)
			g, err := os.OpenFile(f.Name(), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			g.Close()
			mustWriteAt(t, f, "q", 1)
		}, "\x00q", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mount(t)
			m.create(t, "f", "0123456789", true)
			f := m.open(t, "f", os.O_RDWR)
			tc.do(t, f)
			want(t, "before the power cut", m.read(t, "f"), tc.read)
			m.powerCut()
			want(t, "after the power cut", m.read(t, "f"), tc.cut)
		})
	}
}

func mustWriteAt(t *testing.T, f *os.File, s string, off int64) {
	t.Helper()
	if _, err := f.WriteAt([]byte(s), off); err != nil {
		t.Fatal(err)
	}
}

func mustTruncate(t *testing.T, f *os.File, size int64) {
	t.Helper()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// TestSharedState: handles of one file share its pending bytes, so a sync
// through any handle, even a read-only one opened later, makes them
// durable; hard links share them too; appends land at the end.
func TestSharedState(t *testing.T) {
	m := mount(t)
	m.create(t, "f", "", true)
	w1 := m.open(t, "f", os.O_WRONLY)
	w2 := m.open(t, "f", os.O_WRONLY|os.O_APPEND)
	mustWriteAt(t, w1, "one", 0)
	if _, err := w2.WriteString("+two"); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(m.path("f"), m.path("g")); err != nil {
		t.Fatal(err)
	}
	want(t, "through the hard link", m.read(t, "g"), "one+two")
	w1.Close()
	w2.Close()
	r := m.open(t, "g", os.O_RDONLY)
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	want(t, "on disk after a sync of a read-only handle", m.onDisk(t, "f"), "one+two")
	m.powerCut()
	want(t, "after the power cut", m.read(t, "f"), "one+two")
}

// TestRename: a rename goes to the disk at once, the file keeps its
// pending bytes under the new name, and a power cut leaves it there with
// only what was synced: renaming without a sync before gives an empty
// file under the final name.
func TestRename(t *testing.T) {
	m := mount(t)
	m.create(t, "tmp-unsynced", "content", false)
	m.create(t, "tmp-synced", "content", true)
	m.create(t, "final-unsynced", "old", true)
	for _, name := range []string{"unsynced", "synced"} {
		if err := os.Rename(m.path("tmp-"+name), m.path("final-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	want(t, "renamed, before the cut", m.read(t, "final-unsynced"), "content")
	if _, err := os.Stat(filepath.Join(m.backing, "tmp-unsynced")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old name still on disk: %v", err)
	}
	m.powerCut()
	want(t, "renamed without a sync, after the cut", m.read(t, "final-unsynced"), "")
	want(t, "synced then renamed, after the cut", m.read(t, "final-synced"), "content")
}

// TestUnlinkForgets: the pending bytes of a file removed while closed are
// forgotten; those of a file removed while open stay until it is closed.
func TestUnlinkForgets(t *testing.T) {
	m := mount(t)
	m.create(t, "closed", "abc", false)
	f := m.open(t, "open", os.O_CREATE|os.O_RDWR)
	f.WriteString("defg")
	if err := os.Remove(m.path("closed")); err != nil {
		t.Fatal(err)
	}
	m.waitPending(t, "after removing the closed file", 4)
	if err := os.Remove(m.path("open")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, _ := f.ReadAt(buf, 0)
	want(t, "the open removed file", string(buf[:n]), "defg")
	f.Close()
	m.waitPending(t, "after closing the removed file", 0)
}

// waitPending waits until Pending is n, at most 10 s: the kernel sends
// the release of a file after close(2) returns.
func (m *mounted) waitPending(t *testing.T, what string, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.fs.Pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Pending() = %d %s, want %d", m.fs.Pending(), what, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSyncsCount: Syncs counts fsync and fdatasync per path prefix, and
// neither close nor Sync.
func TestSyncsCount(t *testing.T) {
	m := mount(t)
	if err := os.MkdirAll(m.path("d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	m.create(t, "d/e/x", "1", true)
	m.create(t, "d/y", "2", true)
	m.create(t, "z", "3", false)
	f := m.open(t, "d/y", os.O_RDWR)
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if err := m.fs.Sync(); err != nil {
		t.Fatal(err)
	}
	for prefix, n := range map[string]int64{"": 3, "d/": 3, "d/e/": 1, "d/y": 2, "z": 0, "nope": 0} {
		if got := m.fs.Syncs(prefix); got != n {
			t.Errorf("Syncs(%q) = %d, want %d", prefix, got, n)
		}
	}
	want(t, "z on disk after Sync", m.onDisk(t, "z"), "3")
}

// TestUnmountWritesBack: a clean unmount writes pending bytes back; one
// after a power cut does not.
func TestUnmountWritesBack(t *testing.T) {
	m := mount(t)
	m.create(t, "a", "kept", false)
	if err := m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	want(t, "after a clean unmount", m.onDisk(t, "a"), "kept")
	if err := m.fs.Unmount(); err != nil {
		t.Fatalf("second Unmount: %v", err)
	}
}

// TestClean: Clean detaches a mount that nobody unmounted (a crashed
// harness), even one in use, and is quiet where nothing is mounted.
func TestClean(t *testing.T) {
	m := mount(t)
	f := m.open(t, "busy", os.O_CREATE|os.O_RDWR) // keeps the mount busy
	_ = f
	if err := lazyfs.Clean(m.mnt); err != nil {
		t.Fatal(err)
	}
	if mountedAt(t, m.mnt) {
		t.Fatal("still mounted after Clean")
	}
	if err := lazyfs.Clean(m.mnt); err != nil {
		t.Fatalf("Clean with nothing mounted: %v", err)
	}
	if err := lazyfs.Clean(filepath.Join(m.mnt, "missing")); err != nil {
		t.Fatalf("Clean of a missing directory: %v", err)
	}
}

// mountedAt reports whether a lazyfs is mounted at dir.
func mountedAt(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && fields[4] == dir && strings.Contains(line, "lazyfs") {
			return true
		}
	}
	return false
}

// TestConcurrentWriters: goroutines write their own blocks of one file
// and of their own files through their own handles, syncing now and then;
// every byte reads back, and after a final sync every byte survives a
// power cut.
func TestConcurrentWriters(t *testing.T) {
	m := mount(t)
	const writers, blocks, size = 4, 32, 512
	m.create(t, "shared", "", true)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			shared, err := os.OpenFile(m.path("shared"), os.O_WRONLY, 0)
			if err != nil {
				errs <- err
				return
			}
			defer shared.Close()
			own, err := os.Create(m.path(fmt.Sprintf("own-%d", w)))
			if err != nil {
				errs <- err
				return
			}
			defer own.Close()
			for b := range blocks {
				block := bytes.Repeat([]byte{byte('a' + w)}, size)
				if _, err := shared.WriteAt(block, int64((b*writers+w)*size)); err != nil {
					errs <- err
					return
				}
				if _, err := own.Write(block); err != nil {
					errs <- err
					return
				}
				if b%8 == 7 {
					if err := shared.Sync(); err != nil {
						errs <- err
						return
					}
				}
			}
			if err := own.Sync(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var wantShared strings.Builder
	for range blocks {
		for w := range writers {
			wantShared.Write(bytes.Repeat([]byte{byte('a' + w)}, size))
		}
	}
	want(t, "shared, before the last sync", m.read(t, "shared"), wantShared.String())
	f := m.open(t, "shared", os.O_RDONLY)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m.powerCut()
	want(t, "shared, after the power cut", m.read(t, "shared"), wantShared.String())
	for w := range writers {
		want(t, fmt.Sprintf("own-%d", w), m.read(t, fmt.Sprintf("own-%d", w)), strings.Repeat(string(rune('a'+w)), blocks*size))
	}
	// One sync at creation, writers*blocks/8 while writing, one at the end.
	if got, want := m.fs.Syncs("shared"), int64(1+writers*blocks/8+1); got != want {
		t.Errorf("Syncs(shared) = %d, want %d", got, want)
	}
}

// TestSeekAndAllocate: SEEK_HOLE finds the end past pending bytes, and
// fallocate reserves space but refuses to punch holes into pending data.
func TestSeekAndAllocate(t *testing.T) {
	m := mount(t)
	m.create(t, "f", "0123", true)
	f := m.open(t, "f", os.O_RDWR)
	mustWriteAt(t, f, "pending", 4)
	fd := int(f.Fd())
	if off, err := unix.Seek(fd, 0, unix.SEEK_HOLE); err != nil || off != 11 {
		t.Errorf("SEEK_HOLE from 0: %d, %v; want 11", off, err)
	}
	if off, err := unix.Seek(fd, 5, unix.SEEK_DATA); err != nil || off != 5 {
		t.Errorf("SEEK_DATA from 5: %d, %v; want 5", off, err)
	}
	if _, err := unix.Seek(fd, 11, unix.SEEK_DATA); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("SEEK_DATA at the end: %v, want ENXIO", err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 4096); err != nil {
		t.Errorf("fallocate KEEP_SIZE: %v", err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4, 2); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("fallocate PUNCH_HOLE: %v, want EOPNOTSUPP", err)
	}
	want(t, "after fallocate", m.read(t, "f"), "0123pending")
}
