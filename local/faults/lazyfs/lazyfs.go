// Package lazyfs is a FUSE file system that loses what was not synced: it
// mirrors a backing directory, but every byte written to a file since that
// file's last fsync or fdatasync stays in memory, and PowerCut drops it, as
// a power failure drops a page cache. It is the technique of LazyFS, which
// Jepsen uses to find acknowledged writes that were never made durable.
//
// A harness mounts it over a node's data directory (Mount), cuts the power
// after killing the node (PowerCut), boots it again (Thaw), and asks how
// often a path was synced (Syncs); Unmount or, after a crash of the
// harness, Clean detaches it.
//
// What it models, and what it does not:
//
//   - Data is lazy. A write goes to the file's pending bytes; reads, of
//     any handle, see them over the backing file, and the file's size is
//     the larger of the backing size and the end of its pending bytes.
//     Pending bytes outlive close. Only an fsync or fdatasync of a handle
//     of that file, a write through a handle opened with O_SYNC or
//     O_DSYNC, Sync, or a clean Unmount writes them to the backing file
//     and fsyncs it. Per-write flags such as RWF_SYNC do not reach FUSE.
//     Handles of one file, hard links included, share its pending bytes
//     (they are kept by inode).
//   - Metadata is eager, as in LazyFS's default: create, mkdir, mknod,
//     symlink, link, rename, unlink, rmdir, truncate, chmod, chown, utimes
//     and xattrs go straight to the backing directory and survive a power
//     cut; so does fallocate, in the modes that only reserve space (the
//     others are refused). A truncate drops the pending bytes past the new
//     size. A rename keeps the file's pending bytes (they belong to the
//     inode), so after a power cut the file is at its new name with only
//     the bytes synced before: a write-then-rename without fsync leaves a
//     short or empty file under the final name, the hazard atomic-file
//     writers guard against by syncing before the rename. An fsync of a
//     directory goes to the backing directory and is not counted.
//   - Nothing is written back in the background: unsynced bytes stay
//     pending until a sync or a power cut, the worst case a kernel allows.
//   - sync(2) and syncfs(2) do not reach this file system (go-fuse has no
//     SYNCFS operation), so they make nothing durable; Sync does.
//
// After PowerCut the file system is frozen, like a machine without power:
// every operation that would change the backing directory or add pending
// bytes fails with EIO, so a process that is shut down after the cut
// (rather than killed) cannot make anything durable on its way out. Thaw
// is the next boot. Reads keep working throughout.
//
// Mounting needs root and /dev/fuse; it mounts directly (no fusermount),
// without allow_other, so only root uses the mount. Files are opened in
// direct I/O mode and the kernel caches no attributes or entries, so after
// a power cut no stale page or size is served.
package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// ErrFrozen is returned by Sync after PowerCut and before Thaw.
var ErrFrozen = errors.New("lazyfs: frozen after a power cut")

// FS is a mounted lazy file system. Its methods are safe for concurrent
// use, also with the operations of processes on the mount.
type FS struct {
	backing    string
	mountpoint string
	server     *fuse.Server

	// gate orders power cuts against everything that changes state: those
	// hold it shared for their whole length and check frozen; PowerCut,
	// Thaw and Unmount hold it exclusively.
	gate   sync.RWMutex
	frozen bool

	mu    sync.Mutex       // guards the fields below; taken before a file's mu
	files map[uint64]*file // by inode number, while open or holding pending bytes
	syncs map[string]int64 // fsyncs and fdatasyncs by path relative to the root
}

// file is the shared state of one inode.
type file struct {
	handles int // open handles; guarded by FS.mu

	mu      sync.Mutex
	pending extents
	fd      int // a writable descriptor of the backing file while pending holds bytes, else -1
}

// Mount mounts on mountpoint (an existing directory) a lazy mirror of the
// backing directory. The mount is detached by Unmount, or by Clean after
// a crash of the mounting process.
func Mount(backing, mountpoint string) (*FS, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lazyfs: mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("lazyfs: no FUSE device: %w", err)
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: backing directory: %w", err)
	}
	lr, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: backing directory: %w", err)
	}
	lfs := &FS{backing: backing, mountpoint: mountpoint, files: map[uint64]*file{}, syncs: map[string]int64{}}
	root := &node{LoopbackNode: lr.(*fs.LoopbackNode), fs: lfs}
	noCache := time.Duration(0)
	server, err := fs.Mount(mountpoint, root, &fs.Options{
		EntryTimeout:    &noCache,
		AttrTimeout:     &noCache,
		NegativeTimeout: &noCache,
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true, // there may be no fusermount binary
			FsName:            "lazyfs",
			Name:              "lazyfs",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s: %w", mountpoint, err)
	}
	lfs.server = server
	return lfs, nil
}

// Mountpoint returns where f is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// PowerCut drops every pending byte of every file and freezes f until
// Thaw: the backing directory then holds exactly what was synced (and the
// metadata changes, which are never lazy). Operations under way when it is
// called complete first, as if they had happened just before the cut.
func (f *FS) PowerCut() {
	f.gate.Lock()
	defer f.gate.Unlock()
	f.frozen = true
	f.mu.Lock()
	defer f.mu.Unlock()
	for ino, fl := range f.files {
		fl.mu.Lock()
		fl.drop()
		fl.mu.Unlock()
		if fl.handles == 0 {
			delete(f.files, ino)
		}
	}
}

// Thaw ends the freeze of a PowerCut: the machine boots again.
func (f *FS) Thaw() {
	f.gate.Lock()
	f.frozen = false
	f.gate.Unlock()
}

// Sync writes every pending byte of every file to the backing directory
// and fsyncs each file, as sync(2) would on a real disk. It does not count
// as a sync in Syncs. It fails with ErrFrozen after PowerCut.
func (f *FS) Sync() error {
	f.gate.RLock()
	defer f.gate.RUnlock()
	if f.frozen {
		return ErrFrozen
	}
	return f.syncAll()
}

// syncAll flushes every file; the caller holds the gate.
func (f *FS) syncAll() error {
	f.mu.Lock()
	files := make([]*file, 0, len(f.files))
	for _, fl := range f.files {
		files = append(files, fl)
	}
	f.mu.Unlock()
	var errs []error
	for _, fl := range files {
		fl.mu.Lock()
		if fl.fd >= 0 {
			if errno := fl.flush(-1, false); errno != 0 {
				errs = append(errs, errno)
			}
		}
		fl.mu.Unlock()
	}
	f.mu.Lock()
	for ino, fl := range f.files {
		if fl.handles == 0 && fl.fd < 0 {
			delete(f.files, ino)
		}
	}
	f.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lazyfs: sync: %w", err)
	}
	return nil
}

// Syncs returns how many fsync and fdatasync calls, and writes through
// handles opened with O_SYNC or O_DSYNC, on files whose path,
// relative to the root of the mount and at the time of the call, starts
// with prefix have succeeded ("" counts all; end a directory's name with
// "/"). Calls refused while frozen are not counted; nor is Sync.
func (f *FS) Syncs(prefix string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for p, c := range f.syncs {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

// Pending returns how many bytes are pending, in every file together.
func (f *FS) Pending() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, fl := range f.files {
		fl.mu.Lock()
		n += fl.pending.bytes()
		fl.mu.Unlock()
	}
	return n
}

// Unmount writes the pending bytes back (a clean shutdown; not when
// frozen: those bytes were lost with the power) and unmounts. If the
// mount is busy it is detached lazily, so Unmount leaves nothing mounted
// unless even that fails. It may be called more than once.
func (f *FS) Unmount() error {
	f.gate.Lock()
	var syncErr error
	if !f.frozen {
		syncErr = f.syncAll()
	}
	// Nothing changes any more: a process still holding a file open (the
	// mount is then detached lazily) writes to a disk that is gone.
	f.frozen = true
	server := f.server
	f.server = nil
	f.gate.Unlock()
	var err error
	if server != nil {
		if err = server.Unmount(); err != nil {
			err = Clean(f.mountpoint)
		}
	}
	f.mu.Lock()
	for ino, fl := range f.files {
		fl.mu.Lock()
		fl.drop()
		fl.mu.Unlock()
		delete(f.files, ino)
	}
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("lazyfs: unmount %s: %w", f.mountpoint, err)
	}
	return syncErr
}

// Clean detaches whatever file system is mounted on mountpoint (lazily,
// like umount -l), for a harness cleaning up after a crash. Nothing
// mounted there is not an error.
func Clean(mountpoint string) error {
	err := unix.Unmount(mountpoint, unix.MNT_DETACH)
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return fmt.Errorf("lazyfs: detach %s: %w", mountpoint, err)
}

// acquire returns the state of inode ino, holding it until release.
func (f *FS) acquire(ino uint64) *file {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.files[ino]
	if fl == nil {
		fl = &file{fd: -1}
		f.files[ino] = fl
	}
	fl.handles++
	return fl
}

// release lets go of a state from acquire. A state nobody holds is
// forgotten once it has no pending bytes, or once its inode has no name
// left (nobody can open it again to sync).
func (f *FS) release(ino uint64, fl *file) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.handles--
	if fl.handles > 0 {
		return
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.fd < 0 || fl.unlinked() {
		fl.drop()
		if f.files[ino] == fl {
			delete(f.files, ino)
		}
	}
}

// forgetUnlinked forgets the pending bytes of inodes that nobody holds
// and that lost their last name (by unlink or by a rename over them).
func (f *FS) forgetUnlinked() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ino, fl := range f.files {
		if fl.handles > 0 {
			continue
		}
		fl.mu.Lock()
		if fl.unlinked() {
			fl.drop()
			delete(f.files, ino)
		}
		fl.mu.Unlock()
	}
}

// lookup returns the state of inode ino, nil if it has none.
func (f *FS) lookup(ino uint64) *file {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[ino]
}

// countSync records a successful fsync of the file at path.
func (f *FS) countSync(path string) {
	f.mu.Lock()
	f.syncs[path]++
	f.mu.Unlock()
}

// size is the file's size given its backing size: pending bytes may
// extend it. The caller holds fl.mu, or fl is nil.
func (fl *file) size(backing int64) int64 {
	if fl == nil {
		return backing
	}
	return max(backing, fl.pending.end())
}

// write records data at off as pending. fd is the writing handle's
// descriptor, duplicated to keep a way to write the bytes back after the
// handle is closed. The caller holds fl.mu.
func (fl *file) write(fd int, off int64, data []byte) syscall.Errno {
	if fl.fd < 0 {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fs.ToErrno(err)
		}
		fl.fd = dup
	}
	fl.pending.write(off, data)
	return 0
}

// flush writes the pending bytes back and syncs the backing file, through
// fd if the file has no pending bytes (fd -1: nothing to sync then). The
// caller holds fl.mu.
func (fl *file) flush(fd int, datasync bool) syscall.Errno {
	if fl.fd >= 0 {
		fd = fl.fd
		for _, e := range fl.pending.list {
			for done := 0; done < len(e.data); {
				n, err := unix.Pwrite(fd, e.data[done:], e.off+int64(done))
				if err != nil {
					return fs.ToErrno(err)
				}
				done += n
			}
		}
	}
	if fd < 0 {
		return 0
	}
	var err error
	if datasync {
		err = unix.Fdatasync(fd)
	} else {
		err = unix.Fsync(fd)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	fl.drop()
	return 0
}

// drop forgets the pending bytes. The caller holds fl.mu.
func (fl *file) drop() {
	fl.pending.reset()
	if fl.fd >= 0 {
		unix.Close(fl.fd)
		fl.fd = -1
	}
}

// unlinked reports whether the file holds pending bytes of an inode with
// no name left. The caller holds fl.mu.
func (fl *file) unlinked() bool {
	if fl.fd < 0 {
		return false
	}
	var st unix.Stat_t
	return unix.Fstat(fl.fd, &st) == nil && st.Nlink == 0
}
