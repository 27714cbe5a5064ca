package events

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestDecodeRecordFastPath: every golden event, as Marshal writes it, takes
// the canonical path.
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
		// What Marshal writes is canonical, and decodes as encoding/json
		// decodes it.
		got, p, ok := decodeCanonical(stored)
		if !ok {
			t.Errorf("%s: not decoded as canonical", f)
			continue
		}
		want, err := env.Payload()
		if err != nil {
			t.Fatal(err)
		}
		env.Data = nil
		if !reflect.DeepEqual(got, env) || !reflect.DeepEqual(p, want) {
			t.Errorf("%s: canonical decoding differs:\n%+v %+v\n%+v %+v", f, got, p, env, want)
		}
	}
}
