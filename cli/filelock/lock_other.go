//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package filelock

import (
	"context"
	"sync"
)

// processLock stands in for flock(2) where it is missing: it serialises
// the goroutines of this process only.
var processLock sync.Mutex

// Lock takes the process-wide lock (there is no flock(2) here) and returns
// the function that releases it. It does not give up when ctx ends.
func Lock(context.Context, string) (func(), error) {
	processLock.Lock()
	return processLock.Unlock, nil
}
