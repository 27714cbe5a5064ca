//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

// Package filelock serialises processes (and goroutines) on a lock file:
// the CLI's OIDC token refresh and the test tool builds use it.
package filelock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes an exclusive flock(2) on name (created 0600, with its
// directory, if needed) and returns the function that releases it. Each
// call opens the file anew, so it serialises processes as well as
// goroutines. It gives up when ctx ends; a lock still being waited for then
// is released as soon as it is granted.
func Lock(ctx context.Context, name string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
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
				if lockErr = syscall.Flock(int(fd), syscall.LOCK_EX); lockErr != syscall.EINTR {
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
		return func() { f.Close() }, nil // closing the file releases the lock
	case <-ctx.Done():
		go func() { <-granted; f.Close() }()
		return nil, fmt.Errorf("waiting for the lock %s: %w", name, ctx.Err())
	}
}
