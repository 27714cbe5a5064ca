//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package toolbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// lockDir takes an exclusive flock(2) on the file name, creating it if
// needed, and returns the function that releases it. The lock serialises
// processes as well as goroutines, since each call opens the file anew. It
// gives up when ctx ends; a lock still being waited for then is released as
// soon as it is granted.
func lockDir(ctx context.Context, name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	granted := make(chan error, 1)
	go func() {
		var lockErr error
		err := rc.Control(func(fd uintptr) {
			for {
				lockErr = syscall.Flock(int(fd), syscall.LOCK_EX)
				if lockErr != syscall.EINTR {
					return
				}
			}
		})
		if err == nil {
			err = lockErr
		}
		granted <- err
	}()
	select {
	case err := <-granted:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		// Closing the file releases the lock.
		return func() { f.Close() }, nil
	case <-ctx.Done():
		go func() {
			<-granted
			f.Close()
		}()
		return nil, fmt.Errorf("waiting for the lock %s: %w", name, ctx.Err())
	}
}

// killGroup makes cmd run in its own process group and, when its context
// ends, kills the whole group: the go command and the compilers it runs.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
