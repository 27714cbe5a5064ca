package lazyfs

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory of the mount: go-fuse's loopback node, with
// data operations made lazy and state changes refused while frozen.
type node struct {
	*fs.LoopbackNode
	fs *FS
}

// The operations node changes; the rest is the loopback node's.
var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

// change runs op unless the file system is frozen, holding the gate
// shared so that a power cut happens before or after it, not during.
func (n *node) change(op func() syscall.Errno) syscall.Errno {
	n.fs.gate.RLock()
	defer n.fs.gate.RUnlock()
	if n.fs.frozen {
		return syscall.EIO
	}
	return op()
}

// fixSize widens a size read from the backing file to cover the pending
// bytes of inode ino.
func (n *node) fixSize(ino uint64, size *uint64) {
	fl := n.fs.lookup(ino)
	if fl == nil {
		return
	}
	fl.mu.Lock()
	*size = uint64(fl.size(int64(*size)))
	fl.mu.Unlock()
}

func (n *node) ino() uint64 { return n.StableAttr().Ino }

// Lookup is the loopback's, with the size of a file with pending bytes.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		n.fixSize(ch.StableAttr().Ino, &out.Attr.Size)
	}
	return ch, errno
}

// inner returns the loopback's own handle under one of ours.
func inner(f fs.FileHandle) fs.FileHandle {
	if h, ok := f.(*handle); ok {
		return h.lf
	}
	return f
}

// Getattr is the loopback's, with the size of a file with pending bytes.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	errno := n.LoopbackNode.Getattr(ctx, inner(f), out)
	if errno == 0 {
		n.fixSize(n.ino(), &out.Size)
	}
	return errno
}

// Statx is the loopback's, with the size of a file with pending bytes.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	errno := n.LoopbackNode.Statx(ctx, inner(f), flags, mask, out)
	if errno == 0 {
		n.fixSize(n.ino(), &out.Size)
	}
	return errno
}

// attrsButSize are the attribute changes other than the size.
const attrsButSize = fuse.FATTR_MODE | fuse.FATTR_UID | fuse.FATTR_GID | fuse.FATTR_ATIME | fuse.FATTR_MTIME |
	fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW | fuse.FATTR_CTIME

// Setattr changes the backing file's attributes at once. A new size
// truncates (or extends) the backing file and drops the pending bytes past
// it, both under the file's lock so no sync interleaves.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	errno := n.change(func() syscall.Errno {
		if size, ok := in.GetSize(); ok {
			if errno := n.truncate(f, int64(size)); errno != 0 {
				return errno
			}
		}
		if in.Valid&attrsButSize == 0 {
			return 0
		}
		rest := *in
		rest.Valid &^= fuse.FATTR_SIZE
		return n.LoopbackNode.Setattr(ctx, nil, &rest, out)
	})
	if errno != 0 {
		return errno
	}
	return n.Getattr(ctx, f, out)
}

// truncate sets the size of the file, through handle f if given.
func (n *node) truncate(f fs.FileHandle, size int64) syscall.Errno {
	ino := n.ino()
	fl := n.fs.acquire(ino)
	defer n.fs.release(ino, fl)
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var err error
	if h, ok := f.(*handle); ok {
		err = unix.Ftruncate(h.fd, size)
	} else {
		err = unix.Truncate(n.backingPath(), size)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	fl.pending.truncate(size)
	return 0
}

// backingPath is the node's path in the backing directory.
func (n *node) backingPath() string {
	return filepath.Join(n.fs.backing, n.Path(nil))
}

// openFlags are the open flags the backing file is opened with: the
// kernel gives offsets itself (no O_APPEND), O_DIRECT would need aligned
// buffers, and O_TRUNC and O_SYNC/O_DSYNC are done by the handle.
func openFlags(flags uint32) uint32 {
	return flags &^ (syscall.O_APPEND | syscall.O_DIRECT | syscall.O_TRUNC | syscall.O_SYNC | syscall.O_DSYNC)
}

// Open opens the backing file and gives a handle on the file's shared
// state, in direct I/O mode (the kernel keeps no page that a power cut
// should have dropped).
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		var h *handle
		errno := n.change(func() syscall.Errno {
			var errno syscall.Errno
			h, errno = n.open(ctx, flags)
			return errno
		})
		if errno != 0 {
			return nil, 0, errno
		}
		return h, fuse.FOPEN_DIRECT_IO, 0
	}
	h, errno := n.open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return h, fuse.FOPEN_DIRECT_IO, 0
}

func (n *node) open(ctx context.Context, flags uint32) (*handle, syscall.Errno) {
	lf, _, errno := n.LoopbackNode.Open(ctx, openFlags(flags))
	if errno != 0 {
		return nil, errno
	}
	h, errno := newHandle(n, lf, flags)
	if errno != 0 {
		return nil, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		if errno := h.truncate(); errno != 0 {
			h.Release(ctx)
			return nil, errno
		}
	}
	return h, 0
}

// Create creates (or opens) the backing file, as Open.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	var (
		ch *fs.Inode
		h  *handle
	)
	errno := n.change(func() syscall.Errno {
		var (
			lf    fs.FileHandle
			errno syscall.Errno
		)
		ch, lf, _, errno = n.LoopbackNode.Create(ctx, name, openFlags(flags), mode, out)
		if errno != 0 {
			return errno
		}
		h, errno = newHandle(ch.Operations().(*node), lf, flags)
		if errno != 0 {
			return errno
		}
		if flags&syscall.O_TRUNC != 0 {
			if errno = h.truncate(); errno != 0 {
				h.Release(ctx)
				return errno
			}
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(h.fd, &st); err != nil {
			h.Release(ctx)
			return fs.ToErrno(err)
		}
		out.Attr.FromStat(&st)
		n.fixSize(ch.StableAttr().Ino, &out.Attr.Size)
		return 0
	})
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return ch, h, fuse.FOPEN_DIRECT_IO, 0
}

// Mkdir is the loopback's, refused while frozen.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		ch, errno = n.LoopbackNode.Mkdir(ctx, name, mode, out)
		return errno
	})
	return ch, errno
}

// Mknod is the loopback's, refused while frozen.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		ch, errno = n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
		return errno
	})
	return ch, errno
}

// Symlink is the loopback's, refused while frozen.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		ch, errno = n.LoopbackNode.Symlink(ctx, target, name, out)
		return errno
	})
	return ch, errno
}

// Link is the loopback's, refused while frozen; the new name shows the
// file's pending bytes.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		ch, errno = n.LoopbackNode.Link(ctx, target, name, out)
		return errno
	})
	if errno == 0 {
		n.fixSize(ch.StableAttr().Ino, &out.Attr.Size)
	}
	return ch, errno
}

// Rmdir is the loopback's, refused while frozen.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.change(func() syscall.Errno { return n.LoopbackNode.Rmdir(ctx, name) })
}

// Unlink is the loopback's, refused while frozen. The pending bytes of a
// file that lost its last name and is not open are forgotten.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	errno := n.change(func() syscall.Errno { return n.LoopbackNode.Unlink(ctx, name) })
	if errno == 0 {
		n.fs.forgetUnlinked()
	}
	return errno
}

// Rename is the loopback's, refused while frozen. The file keeps its
// pending bytes; those of a file it replaced are forgotten as by Unlink.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	errno := n.change(func() syscall.Errno {
		return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	})
	if errno == 0 {
		n.fs.forgetUnlinked()
	}
	return errno
}

// Setxattr is the loopback's, refused while frozen.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.change(func() syscall.Errno { return n.LoopbackNode.Setxattr(ctx, attr, data, flags) })
}

// Removexattr is the loopback's, refused while frozen.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.change(func() syscall.Errno { return n.LoopbackNode.Removexattr(ctx, attr) })
}

// CopyFileRange is not offered, so the kernel copies through Read and
// Write, which know the pending bytes.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle,
	offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}
