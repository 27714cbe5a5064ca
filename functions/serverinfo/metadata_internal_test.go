package serverinfo

import (
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestKeyDocs: GET /1.0/metadata/configuration describes exactly the keys
// the server accepts, each with a type and a description.
func TestKeyDocs(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff(slices.Sorted(maps.Keys(keys)), slices.Sorted(maps.Keys(keyDocs))); diff != "" {
		t.Errorf("documented keys (-accepted +documented):\n%s", diff)
	}
	for k, d := range keyDocs {
		if d.Type != "string" && d.Type != "bool" && d.Type != "integer" {
			t.Errorf("%s: type %q", k, d.Type)
		}
		if d.Description == "" {
			t.Errorf("%s: no description", k)
		}
	}
}
