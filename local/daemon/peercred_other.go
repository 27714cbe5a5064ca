//go:build !linux

package daemon

import (
	"net"
	"os/user"
)

// peerUser returns the user running the daemon: without SO_PEERCRED the
// socket's file permissions are what restrict access.
func peerUser(net.Conn) string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
