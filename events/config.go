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
