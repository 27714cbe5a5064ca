package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestWriteFileAtomic: the file is written whole with its mode, replaces
// what was there, and leaves no temporary file; a reader looking while it
// is rewritten over and over sees it absent or complete, never empty or
// cut short; a write that fails leaves the target as it was.
func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	a, b := bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("b"), 256<<10)
	if err := writeFileAtomic(path, a, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range 200 {
			data := a
			if i%2 == 0 {
				data = b
			}
			if err := writeFileAtomic(path, data, 0o644); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for reads, stop := 0, false; !stop; reads++ {
		select {
		case <-done:
			stop = true
		default:
		}
		got, err := os.ReadFile(path)
		if err != nil || !(bytes.Equal(got, a) || bytes.Equal(got, b)) {
			t.Errorf("read %d: %d bytes, %v: neither whole content", reads, len(got), err)
			break
		}
	}
	wg.Wait()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, a) {
		t.Errorf("after the last write the file holds %d bytes, not the last content", len(got))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %d entries (%v), want the file alone", len(entries), err)
	}

	// The target is a directory: the rename fails, the directory stays,
	// and no temporary file is left beside it.
	target := filepath.Join(dir, "taken")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "inside"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(target, a, 0o600); err == nil {
		t.Fatal("writing over a non-empty directory succeeded")
	}
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		t.Errorf("the target changed: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
