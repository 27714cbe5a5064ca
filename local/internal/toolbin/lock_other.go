//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package toolbin

import (
	"context"
	"os/exec"
	"sync"
)

// processLock serialises builds within this process where flock(2) is not
// available; concurrent test processes may then build the same tool twice,
// which the rename into place keeps harmless.
var processLock sync.Mutex

// lockDir takes the process-wide build lock and returns the function that
// releases it. It does not give up when ctx ends.
func lockDir(_ context.Context, _ string) (unlock func(), err error) {
	processLock.Lock()
	return processLock.Unlock, nil
}

// killGroup leaves cmd as it is: exec.CommandContext kills the go command
// itself when its context ends.
func killGroup(*exec.Cmd) {}
