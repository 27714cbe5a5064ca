//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package toolbin

import "os/exec"

// killGroup leaves cmd as it is: exec.CommandContext kills the go command
// itself when its context ends.
func killGroup(*exec.Cmd) {}
