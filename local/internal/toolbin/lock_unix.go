//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package toolbin

import (
	"os/exec"
	"syscall"
)

// killGroup makes cmd run in its own process group and, when its context
// ends, kills the whole group: the go command and the compilers it runs.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
