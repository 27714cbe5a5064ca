//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package daemon

import (
	"os"
	"path/filepath"
	"sync"
)

// Without flock(2), a data directory is locked against the daemons of
// this process only.
var (
	lockedMu sync.Mutex
	locked   = map[string]bool{} // by the lock file's absolute path
)

func lockKey(f *os.File) string {
	p, err := filepath.Abs(f.Name())
	if err != nil {
		p = f.Name()
	}
	return p
}

// tryLock marks f's path locked by this process; it reports held when a
// daemon of this process has it already.
func tryLock(f *os.File) (held bool, err error) {
	lockedMu.Lock()
	defer lockedMu.Unlock()
	k := lockKey(f)
	if locked[k] {
		return true, nil
	}
	locked[k] = true
	return false, nil
}

// unlock releases what tryLock took.
func unlock(f *os.File) {
	lockedMu.Lock()
	defer lockedMu.Unlock()
	delete(locked, lockKey(f))
}
