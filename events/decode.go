package events

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// typedEnvelope is Envelope with its data decoded in the same pass as the
// attributes: Data holds a pointer to the payload the type names.
type typedEnvelope struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject,omitempty"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            any       `json:"data"`
	ActorName       string    `json:"actorname,omitempty"`
	ActorMethod     string    `json:"actormethod,omitempty"`
	ActorAddress    string    `json:"actoraddress,omitempty"`
	PrevHash        string    `json:"prevhash"`
}

// DecodeRecord parses stored bytes into an envelope and its typed payload,
// exactly as Decode followed by Envelope.Payload would, with one pass of
// the JSON decoder over the data instead of four: replay spends most of its
// time here. The returned envelope's Data is left empty.
func DecodeRecord(raw []byte) (Envelope, Payload, error) {
	// A quick walk over the top-level members finds the type and checks
	// that data occurs once; the payload it names is then decoded in the
	// same pass as the attributes. Anything unusual (escaped or non-ASCII
	// member names, a repeated or missing data member, a null data, any
	// error) takes the two-step path, so that results and errors are
	// exactly Decode's and Payload's.
	if env, p, ok := decodeCanonical(raw); ok {
		return env, p, nil
	}
	if typ, ok := members(raw); ok {
		if mk, ok := registry[typ]; ok {
			p := mk()
			t := typedEnvelope{Data: p}
			if err := json.Unmarshal(raw, &t); err == nil && t.Data == p {
				env := Envelope{
					SpecVersion: t.SpecVersion, ID: t.ID, Source: t.Source, Type: t.Type, Subject: t.Subject,
					Time: t.Time, DataContentType: t.DataContentType, ActorName: t.ActorName,
					ActorMethod: t.ActorMethod, ActorAddress: t.ActorAddress, PrevHash: t.PrevHash,
				}
				if env.check() == nil {
					return env, p, nil
				}
			}
		}
	}
	env, err := Decode(raw)
	if err != nil {
		return Envelope{}, nil, err
	}
	p, err := env.Payload()
	env.Data = nil
	return env, p, err
}

// members walks the top-level object of raw without validating it (the
// decoder does that) and returns the value of its one "type" member; ok is
// false unless raw is an object whose member names are plain ASCII without
// escapes, with exactly one member named type (a string without escapes)
// and one named data, up to case.
func members(raw []byte) (typ string, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return "", false
	}
	types, datas := 0, 0
	for {
		i = skipSpace(raw, i+1)
		if i >= len(raw) || raw[i] != '"' {
			return "", false
		}
		end := stringEnd(raw, i+1)
		if end < 0 {
			return "", false
		}
		key := raw[i+1 : end]
		for _, c := range key {
			if c == '\\' || c >= utf8.RuneSelf {
				return "", false
			}
		}
		i = skipSpace(raw, end+1)
		if i >= len(raw) || raw[i] != ':' {
			return "", false
		}
		i = skipSpace(raw, i+1)
		valueEnd := skipValue(raw, i)
		if valueEnd < 0 {
			return "", false
		}
		switch {
		case bytes.EqualFold(key, []byte("type")):
			types++
			v := raw[i:valueEnd]
			if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
				return "", false
			}
			typ = string(v[1 : len(v)-1])
		case bytes.EqualFold(key, []byte("data")):
			datas++
		}
		i = skipSpace(raw, valueEnd)
		if i >= len(raw) {
			return "", false
		}
		if raw[i] == '}' {
			return typ, types == 1 && datas == 1
		}
		if raw[i] != ',' {
			return "", false
		}
	}
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the quote closing the string whose
// content starts at i, or -1.
func stringEnd(raw []byte, i int) int {
	for {
		j := bytes.IndexByte(raw[i:], '"')
		if j < 0 {
			return -1
		}
		j += i
		n := 0
		for k := j - 1; k >= i && raw[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return j
		}
		i = j + 1
	}
}

// skipValue returns the index just past the value starting at i, or -1.
func skipValue(raw []byte, i int) int {
	depth := 0
	for i < len(raw) {
		switch c := raw[i]; c {
		case '"':
			end := stringEnd(raw, i+1)
			if end < 0 {
				return -1
			}
			i = end + 1
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && i > 0 && (raw[i-1] == '"' || raw[i-1] == '}' || raw[i-1] == ']') {
			return i
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}
