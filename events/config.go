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
// so "core.https_address" spans several subject tokens.
func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '*' || r == '>' || r <= ' ' || r > '~':
			return '_'
		}
		return r
	}, strings.Trim(s, "."))
}
