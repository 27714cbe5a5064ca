package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file, in the data directory, that a running trustlogd
// holds locked and that names its process id.
const LockFile = "trustlogd.lock"

// ErrDirInUse is returned by Start when another trustlogd runs on the
// same data directory.
var ErrDirInUse = errors.New("daemon: the data directory is in use by another trustlogd")

// dirLock is the lock on a data directory held by a running daemon.
type dirLock struct {
	f *os.File
}

// lockDataDir locks dir for this process, or fails with ErrDirInUse
// naming the process that holds it. The lock file stays (removing it
// would let a daemon that opened it before the removal and one that
// creates it anew both hold a lock); release empties it.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon: lock the data directory: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("daemon: lock the data directory: %w", err)
	}
	if held {
		raw, _ := os.ReadFile(path)
		f.Close()
		holder := "unknown pid"
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && pid > 0 {
			holder = "pid " + strconv.Itoa(pid)
		}
		return nil, fmt.Errorf("%w (%s): %s", ErrDirInUse, holder, dir)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		unlock(f)
		f.Close()
		return nil, fmt.Errorf("daemon: lock the data directory: %w", err)
	}
	return &dirLock{f: f}, nil
}

// release empties the lock file and unlocks it. It is safe on a nil lock.
func (l *dirLock) release() {
	if l == nil {
		return
	}
	_ = l.f.Truncate(0)
	unlock(l.f)
	l.f.Close()
}
