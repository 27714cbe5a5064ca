package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/trustlog/trustlog/functions/sealing"
)

// loadOrCreateSealingKey reads the service key from <dir>/sealing.key,
// creating it (32 random bytes, mode 0600) on first start. The key seals
// token secrets; it never enters the event log.
func loadOrCreateSealingKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, "sealing.key")
	key, err := os.ReadFile(path)
	switch {
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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write sealing key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("write sealing key: %w", err)
	}
	return key, f.Close()
}
