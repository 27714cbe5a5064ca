package daemon

import (
	"os"
	"path/filepath"
	"runtime"
)

// writeFileAtomic writes data to path (mode mode) so that a crash at any
// point leaves path either as it was or complete, never empty or cut
// short: the data goes to a temporary file in the same directory, which
// is fsynced and renamed over path, and then the directory is fsynced so
// that the rename is on disk too. It replaces an existing path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // nothing left behind on failure; gone already on success
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the entries of dir durable. Windows cannot sync a
// directory opened for reading, so there it does nothing.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
