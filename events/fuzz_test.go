package events_test

import (
	"os"
	"testing"

	"github.com/trustlog/trustlog/events"
)

// FuzzDecode: any stored bytes either fail to decode or give an envelope
// whose payload decodes or is refused, without panicking; a decoded
// envelope marshals and decodes again.
func FuzzDecode(f *testing.F) {
	for _, typ := range events.Types() {
		if raw, err := os.ReadFile(goldenPath(typ)); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"specversion":"1.0","type":"trustlog.token.issued.v1","data":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := events.Decode(raw)
		if err != nil {
			return
		}
		_, _ = env.Payload()
		again, err := env.Marshal()
		if err != nil {
			return
		}
		if _, err := events.Decode(again); err != nil {
			t.Fatalf("a decoded envelope does not decode after Marshal: %v", err)
		}
	})
}
