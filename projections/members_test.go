package projections_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// TestMemberConfig: a member's own value of a key wins over the shared one
// for that member only; a member without one has the shared value (as a
// data directory from before member-local keys had); unsetting a member's
// value gives it the shared one back; snapshots keep member values.
func TestMemberConfig(t *testing.T) {
	t.Parallel()
	const key = "core.https_address"
	c := newChain(t)
	b := projections.NewBuilder(nil)
	apply := func(p events.Payload) *projections.Model {
		t.Helper()
		if err := b.Apply(c.next(p, nil)); err != nil {
			t.Fatal(err)
		}
		return b.Model()
	}
	m := apply(&events.ConfigChanged{Key: key, Value: "10.0.0.1:8443"})
	if got := m.MemberConfigValue("t1", key); got != "10.0.0.1:8443" {
		t.Fatalf("t1 without its own value: %q, want the shared value", got)
	}
	before := apply(&events.ConfigMemberChanged{Member: "t1", Key: key, Value: "10.0.0.11:8443"})
	m = apply(&events.ConfigMemberChanged{Member: "t2", Key: key, Value: "10.0.0.12:8443"})
	for member, want := range map[string]string{"t1": "10.0.0.11:8443", "t2": "10.0.0.12:8443", "t3": "10.0.0.1:8443"} {
		if got := m.MemberConfigValue(member, key); got != want {
			t.Errorf("%s: %q, want %q", member, got, want)
		}
	}
	if got := before.MemberConfigValue("t2", key); got != "10.0.0.1:8443" {
		t.Errorf("an earlier snapshot changed: t2 = %q", got)
	}
	if m.ConfigValue(key) != "10.0.0.1:8443" {
		t.Errorf("the shared value changed: %q", m.ConfigValue(key))
	}
	if diff := cmp.Diff([]string{"t1", "t2"}, m.Members()); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	want := map[string]string{key: "10.0.0.12:8443", "user.x": "y"}
	m = apply(&events.ConfigChanged{Key: "user.x", Value: "y"})
	if diff := cmp.Diff(want, m.MemberConfig("t2")); diff != "" {
		t.Errorf("t2's effective configuration (-want +got):\n%s", diff)
	}

	raw, err := projections.EncodeSnapshot(m)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := projections.DecodeSnapshot(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := restored.MemberConfigValue("t2", key); got != "10.0.0.12:8443" {
		t.Errorf("restored t2: %q", got)
	}
	if projections.Digest(restored) != projections.Digest(m) {
		t.Error("the restored model's digest differs")
	}

	m = apply(&events.ConfigMemberChanged{Member: "t2", Key: key, Value: ""})
	if got := m.MemberConfigValue("t2", key); got != "10.0.0.1:8443" {
		t.Errorf("t2 after unsetting its value: %q, want the shared value", got)
	}
	if m.HasMember("t2") || !m.HasMember("t1") {
		t.Errorf("members after unsetting t2's only value: %v", m.Members())
	}
	if projections.Digest(m) == projections.Digest(restored) {
		t.Error("the digest does not cover member values")
	}
}
