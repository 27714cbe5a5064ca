package events

import "strings"

// ConfigChanged records a new value for one server configuration key.
// An empty Value unsets the key, as in LXD and Incus.
type ConfigChanged struct {
	// Key is the configuration key, such as "core.https_address".
	Key string `json:"key"`
	// Value is the new value; "" means unset.
	Value string `json:"value"`
}

// EventType implements Payload.
func (ConfigChanged) EventType() string { return "trustlog.config.changed.v1" }

// EventSubject implements Payload.
func (e ConfigChanged) EventSubject() string { return SubjectPrefix + ".config." + subjectToken(e.Key) }

// subjectToken makes s safe inside a NATS subject: the wildcard characters,
// whitespace and anything outside printable ASCII become '_'. Dots are kept,
// so "core.https_address" spans several subject tokens; outer dots are
// dropped and an empty token (as in "a..b", or s == "") becomes '_'.
func subjectToken(s string) string {
	toks := strings.Split(strings.Trim(s, "."), ".")
	for i, tok := range toks {
		if tok == "" {
			toks[i] = "_"
			continue
		}
		toks[i] = strings.Map(func(r rune) rune {
			switch {
			case r == '*' || r == '>' || r <= ' ' || r > '~':
				return '_'
			}
			return r
		}, tok)
	}
	return strings.Join(toks, ".")
}

// ConfigMemberChanged records a new value of a member-local configuration
// key (one that names a machine, such as "core.https_address") for one
// member of a cluster of instances sharing the log. The member's value
// takes precedence over a ConfigChanged value of the same key, for that
// member only. An empty Value unsets the member's value.
type ConfigMemberChanged struct {
	// Member is the name of the instance the value is for (its NATS server
	// name in an embedded cluster).
	Member string `json:"member"`
	// Key is the configuration key.
	Key string `json:"key"`
	// Value is the new value; "" means unset for this member.
	Value string `json:"value"`
}

// EventType implements Payload.
func (ConfigMemberChanged) EventType() string { return "trustlog.config.member.changed.v1" }

// EventSubject implements Payload: trustlog.config.member.<member>.<key>,
// with the dots of the member name made '_' so that the member is one
// subject token.
func (e ConfigMemberChanged) EventSubject() string {
	return SubjectPrefix + ".config.member." + subjectToken(strings.ReplaceAll(e.Member, ".", "_")) + "." + subjectToken(e.Key)
}
