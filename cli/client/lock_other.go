//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package client

import (
	"context"
	"sync"
)

// processLock stands in for flock(2) where it is missing: it serialises
// the goroutines of this process only.
var processLock sync.Mutex

func lockFile(context.Context, string) (func(), error) {
	processLock.Lock()
	return processLock.Unlock, nil
}
