package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/trustlog/trustlog/functions/sealing"
	"github.com/trustlog/trustlog/functions/serverinfo"
	"github.com/trustlog/trustlog/projections"
)

// SealingKeyFile is the file, in the data directory, holding the service
// key (32 bytes, mode 0600) that seals token secrets and sensitive
// configuration values. It never enters the event log.
const SealingKeyFile = "sealing.key"

// ErrSealingKeyLost is returned by Start when sealing.key is empty while
// the event log holds values sealed under the key it should hold.
var ErrSealingKeyLost = errors.New("the sealing key is lost")

// loadOrCreateSealingKey reads the service key from <dir>/sealing.key,
// creating it on first start. It is written atomically and on disk before
// anything is sealed with it, so a crash leaves either no file or the
// whole key.
//
// An empty file can only come from an older trustlogd, which wrote the
// key without syncing it: a crash then could leave the file empty while
// the log went on to hold values sealed with the key. An empty file is
// therefore replaced by a new key only when m (the log, replayed) holds
// nothing sealed: no token, no sensitive configuration value. Otherwise
// Start fails with ErrSealingKeyLost, saying what was sealed, so that no
// new key is made behind the operator's back; removing the file then
// makes a new key, and what was sealed under the lost one cannot be
// opened again (token secrets are not shown again, sensitive values must
// be set again).
func loadOrCreateSealingKey(dir string, m *projections.Model) ([]byte, error) {
	path := filepath.Join(dir, SealingKeyFile)
	key, err := os.ReadFile(path)
	switch {
	case err == nil && len(key) == 0:
		if what := sealedIn(m); what != "" {
			return nil, fmt.Errorf("%w: %s is empty (an older trustlogd crashed while writing it), and the event log holds %s sealed under it; remove the file to start with a new key (those values cannot be opened again)", ErrSealingKeyLost, path, what)
		}
	case err == nil:
		if len(key) != sealing.KeySize {
			return nil, fmt.Errorf("%s: want %d bytes, found %d", path, sealing.KeySize, len(key))
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read sealing key: %w", err)
	}
	key = make([]byte, sealing.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate sealing key: %w", err)
	}
	if err := writeFileAtomic(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("write sealing key: %w", err)
	}
	return key, nil
}

// sealedIn says what m holds sealed under the service key ("" when
// nothing): tokens (every state: their operations show the secret) and
// sensitive configuration values.
func sealedIn(m *projections.Model) string {
	var tokens int
	for _, t := range m.Tokens() {
		if t.SealedSecret != "" {
			tokens++
		}
	}
	var keys []string
	for k, v := range m.Config() {
		if v != "" && serverinfo.SensitiveKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var what []string
	if tokens > 0 {
		what = append(what, fmt.Sprintf("%d token secrets", tokens))
	}
	if len(keys) > 0 {
		what = append(what, "the value of "+strings.Join(keys, ", "))
	}
	return strings.Join(what, " and ")
}
