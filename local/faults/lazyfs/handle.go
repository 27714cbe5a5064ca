package lazyfs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// handle is an open file: the loopback's handle (which owns the backing
// descriptor) and the file's shared state.
type handle struct {
	node *node
	ino  uint64
	f    *file
	lf   fs.FileHandle
	fd   int // lf's descriptor of the backing file

	// syncWrites makes each write a sync point (opened with O_SYNC or
	// O_DSYNC); dataOnly is O_DSYNC without O_SYNC (an fdatasync).
	syncWrites, dataOnly bool
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileLseeker   = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

// newHandle wraps lf, a loopback handle of n opened with flags, and
// takes hold of n's state.
func newHandle(n *node, lf fs.FileHandle, flags uint32) (*handle, syscall.Errno) {
	pf, ok := lf.(fs.FilePassthroughFder)
	if !ok {
		lf.(fs.FileReleaser).Release(context.Background())
		return nil, syscall.EIO
	}
	fd, _ := pf.PassthroughFd()
	ino := n.ino()
	return &handle{node: n, ino: ino, f: n.fs.acquire(ino), lf: lf, fd: fd,
		syncWrites: flags&syscall.O_DSYNC != 0, dataOnly: flags&syscall.O_SYNC != syscall.O_SYNC}, 0
}

// truncate empties the file (an open with O_TRUNC).
func (h *handle) truncate() syscall.Errno {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if err := unix.Ftruncate(h.fd, 0); err != nil {
		return fs.ToErrno(err)
	}
	h.f.pending.truncate(0)
	return 0
}

// Read reads the backing file with the pending bytes laid over it, up to
// the file's size (zeros where neither has data).
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	size := h.f.size(st.Size)
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	buf := dest[:min(int64(len(dest)), size-off)]
	read := 0
	if off < st.Size {
		want := buf[:min(int64(len(buf)), st.Size-off)]
		for read < len(want) {
			n, err := unix.Pread(h.fd, want[read:], off+int64(read))
			if err != nil {
				return nil, fs.ToErrno(err)
			}
			if n == 0 {
				break
			}
			read += n
		}
	}
	clear(buf[read:])
	h.f.pending.overlay(off, buf)
	return fuse.ReadResultData(buf), 0
}

// Write keeps data as pending bytes of the file, or, on a handle opened
// with O_SYNC or O_DSYNC, syncs the file before it returns (counted as a
// sync). It refuses while frozen.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	errno := h.node.change(func() syscall.Errno {
		h.f.mu.Lock()
		defer h.f.mu.Unlock()
		if errno := h.f.write(h.fd, off, data); errno != 0 || !h.syncWrites {
			return errno
		}
		return h.f.flush(h.fd, h.dataOnly)
	})
	if errno != 0 {
		return 0, errno
	}
	if h.syncWrites {
		h.node.fs.countSync(h.node.Path(nil))
	}
	return uint32(len(data)), 0
}

// Fsync writes the file's pending bytes to the backing file and syncs it
// (fdatasync if flags ask for it, bit 0), and counts the sync. It refuses
// while frozen.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	errno := h.node.change(func() syscall.Errno {
		h.f.mu.Lock()
		defer h.f.mu.Unlock()
		return h.f.flush(h.fd, flags&1 != 0)
	})
	if errno == 0 {
		h.node.fs.countSync(h.node.Path(nil))
	}
	return errno
}

// Flush is close(2) on a descriptor of the handle: it makes nothing
// durable.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	return h.lf.(fs.FileFlusher).Flush(ctx)
}

// Release closes the backing descriptor; the pending bytes stay with the
// file.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	errno := h.lf.(fs.FileReleaser).Release(ctx)
	h.node.fs.release(h.ino, h.f)
	return errno
}

// Lseek answers SEEK_DATA and SEEK_HOLE (the kernel does the rest) as
// for a file without holes: data up to the size, then the hole at its end.
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return 0, fs.ToErrno(err)
	}
	size := uint64(h.f.size(st.Size))
	if off >= size {
		return 0, syscall.ENXIO
	}
	switch whence {
	case unix.SEEK_DATA:
		return off, 0
	case unix.SEEK_HOLE:
		return size, 0
	}
	return 0, syscall.EINVAL
}

// Allocate reserves space in the backing file (metadata: not lazy); it
// refuses the modes that change data (punching holes, zeroing,
// collapsing), which would have to be merged with pending bytes.
func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if mode&^unix.FALLOC_FL_KEEP_SIZE != 0 {
		return syscall.EOPNOTSUPP
	}
	return h.node.change(func() syscall.Errno {
		return h.lf.(fs.FileAllocater).Allocate(ctx, off, size, mode)
	})
}
