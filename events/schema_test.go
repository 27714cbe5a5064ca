package events_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"

	"github.com/trustlog/trustlog/events"
)

func loadSchema(t *testing.T, name string) *gojsonschema.Schema {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("schema", name+".json"))
	if err != nil {
		t.Fatalf("%s has no JSON Schema: %v", name, err)
	}
	s, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(raw))
	if err != nil {
		t.Fatalf("schema %s: %v", name, err)
	}
	return s
}

func validate(t *testing.T, s *gojsonschema.Schema, doc []byte) []string {
	t.Helper()
	res, err := s.Validate(gojsonschema.NewBytesLoader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range res.Errors() {
		out = append(out, e.String())
	}
	return out
}

// TestSchemas checks that every registered event type has a JSON Schema
// under events/schema and that its golden file (the envelope and the data)
// validates; and that the schemas are not vacuous: a broken document is
// refused.
func TestSchemas(t *testing.T) {
	t.Parallel()
	envelope := loadSchema(t, "envelope")
	for _, typ := range events.Types() {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(goldenPath(typ))
			if err != nil {
				t.Fatal(err)
			}
			if errs := validate(t, envelope, raw); len(errs) > 0 {
				t.Errorf("envelope: %s", strings.Join(errs, "; "))
			}
			var env struct{ Data json.RawMessage }
			if err := json.Unmarshal(raw, &env); err != nil {
				t.Fatal(err)
			}
			data := loadSchema(t, typ)
			if errs := validate(t, data, env.Data); len(errs) > 0 {
				t.Errorf("data: %s", strings.Join(errs, "; "))
			}
			var fields map[string]any
			_ = json.Unmarshal(env.Data, &fields)
			fields["unexpected_field"] = true
			broken, _ := json.Marshal(fields)
			if errs := validate(t, data, broken); len(errs) == 0 {
				t.Error("the schema accepts an unknown field")
			}
		})
	}
}
