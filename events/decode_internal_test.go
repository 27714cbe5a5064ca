package events

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDecodeRecordFastPath: every golden event, as Marshal writes it, takes
// the one-pass path.
func TestDecodeRecordFastPath(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		env, err := Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		stored, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if typ, ok := members(stored); !ok || typ != env.Type {
			t.Errorf("%s: members = %q, %v; want %q, true", f, typ, ok, env.Type)
		}
	}
}
