package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trustlog/trustlog/functions/serverinfo"
)

// MemberFile is the file, in the data directory, holding the member name
// of an instance that is given none (Config.Member, Config.NATSName).
const MemberFile = "member"

// memberName returns this instance's member name: Config.Member, else
// the embedded NATS server's name in a cluster, else the name kept in
// <dir>/member, made on first start from the host name and a random
// suffix (so that instances sharing an external NATS cluster, even on one
// host, never share a name) and kept from then on, whatever the host is
// renamed to.
func memberName(cfg Config) (string, error) {
	switch {
	case cfg.Member != "":
		return cfg.Member, nil
	case cfg.NATSName != "":
		return cfg.NATSName, nil
	}
	path := filepath.Join(cfg.Dir, MemberFile)
	raw, err := os.ReadFile(path)
	if err == nil {
		name := strings.TrimSpace(string(raw))
		if err := serverinfo.ValidateMemberName(name); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return name, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read member name: %w", err)
	}
	name, err := newMemberName()
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(path, []byte(name+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write member name: %w", err)
	}
	return name, nil
}

// newMemberName makes a member name from the short host name (letters,
// digits and '-' kept, at most 40 of them) and 4 random bytes in hex.
func newMemberName() (string, error) {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, host)
	host = strings.TrimLeft(host, "-")
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "trustlog"
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("member name: %w", err)
	}
	return host + "-" + hex.EncodeToString(suffix[:]), nil
}
