package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trustlog/trustlog/local/faults/lazyfs"
)

// clean undoes whatever a run in out made, even one that was killed: it
// kills the processes started from out, detaches the mounts under out and
// deletes the harness's network namespaces. It is safe to run at any time.
func clean(out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	var errs []error
	killed := killUnder(abs)
	if killed > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	for _, mp := range mountsUnder(abs) {
		if err := lazyfs.Clean(mp); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	if err := cleanNetworks(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killUnder SIGKILLs every process (but this one) whose command line names
// a path under dir, and returns how many it found.
func killUnder(dir string) int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == os.Getppid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(raw, []byte{0}) {
			if a := string(arg); a == dir || strings.HasPrefix(a, dir+string(filepath.Separator)) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				n++
				break
			}
		}
	}
	return n
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		mp := strings.ReplaceAll(f[1], `\040`, " ")
		if strings.HasPrefix(mp, dir+string(filepath.Separator)) {
			out = append([]string{mp}, out...)
		}
	}
	return out
}
