package projections

import (
	"maps"
	"slices"

	"github.com/trustlog/trustlog/events"
)

// Member-local configuration: values of keys that name one machine (the
// HTTPS listen address, the ACME HTTP listener), recorded per member of a
// cluster of instances sharing the log. A member's value takes precedence
// over the shared value of the same key, for that member only; a member
// without its own value has the shared one (a data directory from before
// member-local keys keeps working unchanged).

// MemberConfigValue returns the effective value of key for member: the
// member's own value if it has one, else the shared value ("" if unset).
func (m *Model) MemberConfigValue(member, key string) string {
	if v, ok := m.members[member][key]; ok {
		return v
	}
	return m.config[key]
}

// MemberConfig returns a copy of the effective configuration of member:
// the shared configuration with the member's own values in place.
func (m *Model) MemberConfig(member string) map[string]string {
	out := maps.Clone(m.config)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, m.members[member])
	return out
}

// MemberOwnConfig returns a copy of the values recorded for member alone
// (nil if none).
func (m *Model) MemberOwnConfig(member string) map[string]string {
	return maps.Clone(m.members[member])
}

// Members returns, sorted, the members that have a value of their own.
func (m *Model) Members() []string {
	return slices.Sorted(maps.Keys(m.members))
}

// HasMember reports whether member has a value of its own.
func (m *Model) HasMember(member string) bool {
	_, ok := m.members[member]
	return ok
}

// applyMember folds a ConfigMemberChanged: the outer map is copied once
// per published snapshot, the member's own map on each change (members
// hold a handful of keys and change rarely).
func (b *Builder) applyMember(e *events.ConfigMemberChanged) {
	if e.Member == "" || e.Key == "" {
		return
	}
	if !b.membersOwned {
		b.m.members = maps.Clone(b.m.members)
		if b.m.members == nil {
			b.m.members = map[string]map[string]string{}
		}
		b.membersOwned = true
	}
	own := maps.Clone(b.m.members[e.Member])
	if own == nil {
		own = map[string]string{}
	}
	if e.Value == "" {
		delete(own, e.Key)
	} else {
		own[e.Key] = e.Value
	}
	if len(own) == 0 {
		delete(b.m.members, e.Member)
		return
	}
	b.m.members[e.Member] = own
}

// putMembers restores the member-local values of a snapshot.
func (b *Builder) putMembers(members map[string]map[string]string) {
	for member, own := range members {
		for k, v := range own {
			b.applyMember(&events.ConfigMemberChanged{Member: member, Key: k, Value: v})
		}
	}
}
