package events

import (
	"bytes"
	"encoding/json"
	"time"
)

// decodeCanonical decodes an envelope written by Marshal, in exactly that
// form: members in the struct's order, strings of printable ASCII with
// simple escapes only, nothing after the closing brace. The payloads of
// the events a trust store is mostly made of (certificates trusted and
// removed, tokens issued, redeemed and revoked) are read here too, in
// their own canonical form; any other payload goes through encoding/json.
// For such input the result is the one encoding/json gives (FuzzDecodeRecord
// compares them); anything else makes ok false and the caller decodes it
// the general way. Replay spends most of its time decoding, and this is
// several times faster than encoding/json's two passes.
func decodeCanonical(raw []byte) (env Envelope, p Payload, ok bool) {
	c := &cursor{b: raw, ok: true}
	env = Envelope{
		SpecVersion:     c.knownAt(`{"specversion":`),
		ID:              c.strAt(`,"id":`),
		Source:          c.strAt(`,"source":`),
		Type:            c.knownAt(`,"type":`),
		Subject:         c.optStr(`,"subject":`),
		Time:            c.timeAt(`,"time":`),
		DataContentType: c.knownAt(`,"datacontenttype":`),
	}
	c.lit(`,"data":`)
	mk, known := registry[env.Type]
	if !c.ok || !known {
		return Envelope{}, nil, false
	}
	if read, ok := canonicalPayloads[env.Type]; ok {
		p = read(c)
	} else {
		end := skipValue(raw, c.i)
		if end < 0 {
			return Envelope{}, nil, false
		}
		p = mk()
		if err := json.Unmarshal(raw[c.i:end], p); err != nil {
			return Envelope{}, nil, false
		}
		c.i = end
	}
	env.ActorName = c.optStr(`,"actorname":`)
	env.ActorMethod = c.optKnown(`,"actormethod":`)
	env.ActorAddress = c.optStr(`,"actoraddress":`)
	env.PrevHash = c.strAt(`,"prevhash":`)
	c.lit(`}`)
	if !c.ok || c.i != len(raw) || env.check() != nil {
		return Envelope{}, nil, false
	}
	return env, p, true
}

// canonicalPayloads read the payloads of the events a trust store is
// mostly made of, in the member order Marshal writes them.
var canonicalPayloads = map[string]func(*cursor) Payload{
	CertificateTrusted{}.EventType(): func(c *cursor) Payload {
		p := &CertificateTrusted{
			Fingerprint: c.strAt(`{"fingerprint":`),
			Name:        c.strAt(`,"name":`),
			Type:        c.knownAt(`,"type":`),
			Restricted:  c.boolAt(`,"restricted":`),
			Projects:    c.strsAt(`,"projects":`),
			Description: c.strAt(`,"description":`),
			Certificate: c.strAt(`,"certificate":`),
		}
		c.lit(`}`)
		return p
	},
	CertificateRemoved{}.EventType(): func(c *cursor) Payload {
		p := &CertificateRemoved{Fingerprint: c.strAt(`{"fingerprint":`), Name: c.strAt(`,"name":`)}
		c.lit(`}`)
		return p
	},
	TokenIssued{}.EventType(): func(c *cursor) Payload {
		p := &TokenIssued{
			ID:           c.strAt(`{"id":`),
			Name:         c.strAt(`,"name":`),
			Type:         c.knownAt(`,"type":`),
			Restricted:   c.boolAt(`,"restricted":`),
			Projects:     c.strsAt(`,"projects":`),
			Description:  c.strAt(`,"description":`),
			SecretHash:   c.strAt(`,"secret_sha256":`),
			SealedSecret: c.strAt(`,"sealed_secret":`),
			Fingerprint:  c.strAt(`,"fingerprint":`),
			Addresses:    c.strsAt(`,"addresses":`),
			ExpiresAt:    c.timeAt(`,"expires_at":`),
			IdentityID:   c.optStr(`,"identity_id":`),
		}
		c.lit(`}`)
		return p
	},
	TokenRedeemed{}.EventType(): func(c *cursor) Payload {
		p := &TokenRedeemed{ID: c.strAt(`{"id":`), Name: c.strAt(`,"name":`), Fingerprint: c.strAt(`,"fingerprint":`)}
		c.lit(`}`)
		return p
	},
	TokenRevoked{}.EventType(): func(c *cursor) Payload {
		p := &TokenRevoked{ID: c.strAt(`{"id":`), Name: c.strAt(`,"name":`)}
		c.lit(`}`)
		return p
	},
}

// cursor reads canonical JSON. Once a read fails, ok is false and every
// later read returns a zero value.
type cursor struct {
	b  []byte
	i  int
	ok bool
}

// lit consumes s exactly.
func (c *cursor) lit(s string) {
	if c.ok && bytes.HasPrefix(c.b[c.i:], []byte(s)) {
		c.i += len(s)
		return
	}
	c.ok = false
}

// opt consumes s if it comes next.
func (c *cursor) opt(s string) bool {
	if c.ok && bytes.HasPrefix(c.b[c.i:], []byte(s)) {
		c.i += len(s)
		return true
	}
	return false
}

// Each reads the member whose key (with the separator before it) is key,
// as a cursor method of the value's kind; opt reads it only if it comes
// next. Go evaluates them in the order written, including inside a
// composite literal.
func (c *cursor) strAt(key string) string     { c.lit(key); return c.str() }
func (c *cursor) boolAt(key string) bool      { c.lit(key); return c.boolean() }
func (c *cursor) strsAt(key string) []string  { c.lit(key); return c.strs() }
func (c *cursor) timeAt(key string) time.Time { c.lit(key); return c.time() }

func (c *cursor) optStr(key string) string {
	if c.opt(key) {
		return c.str()
	}
	return ""
}

func (c *cursor) knownAt(key string) string { c.lit(key); return c.known() }

func (c *cursor) optKnown(key string) string {
	if c.opt(key) {
		return c.known()
	}
	return ""
}

// known reads a string as str does, returning the shared copy when it is
// one of the few values most events carry (spec version, event types,
// content type, certificate types, actor methods): a replay then does not
// allocate them once per event.
func (c *cursor) known() string {
	start := c.i
	if !c.ok || start >= len(c.b) || c.b[start] != '"' {
		c.ok = false
		return ""
	}
	if end := bytes.IndexByte(c.b[start+1:], '"'); end >= 0 {
		if v, ok := knownStrings[string(c.b[start+1:start+1+end])]; ok {
			c.i = start + end + 2
			return v
		}
	}
	return c.str()
}

// knownStrings are the values known shares. None holds a backslash, so a
// match up to the first quote is the whole string.
var knownStrings = func() map[string]string {
	m := map[string]string{}
	for _, v := range []string{SpecVersion, "application/json",
		CertificateTypeClient, CertificateTypeServer, CertificateTypeMetrics,
		"system", "tls", "unix", "cluster", "pki", "oidc", "untrusted"} {
		m[v] = v
	}
	for t := range registry {
		m[t] = t
	}
	return m
}()

// str reads a string of printable ASCII whose escapes are among \" \\ \/
// \b \f \n \r \t. Anything else (other bytes, \u escapes) fails, so that
// the general decoder, which also replaces invalid UTF-8, handles it.
func (c *cursor) str() string {
	if !c.ok || c.i >= len(c.b) || c.b[c.i] != '"' {
		c.ok = false
		return ""
	}
	start := c.i + 1
	escaped := false
	for j := start; j < len(c.b); j++ {
		switch b := c.b[j]; {
		case b == '"':
			c.i = j + 1
			if !escaped {
				return string(c.b[start:j])
			}
			return c.unescape(c.b[start:j])
		case b == '\\':
			escaped = true
			j++ // the escaped byte, checked by unescape
		case b < 0x20 || b >= 0x80:
			c.ok = false
			return ""
		}
	}
	c.ok = false
	return ""
}

func (c *cursor) unescape(s []byte) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		i++
		if i == len(s) {
			c.ok = false
			return ""
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			c.ok = false
			return ""
		}
	}
	return string(out)
}

// strs reads null (nil) or an array of strings (never nil).
func (c *cursor) strs() []string {
	if c.opt(`null`) {
		return nil
	}
	c.lit(`[`)
	out := []string{}
	if c.opt(`]`) {
		return out
	}
	for c.ok {
		out = append(out, c.str())
		if c.opt(`]`) {
			return out
		}
		c.lit(`,`)
	}
	return nil
}

func (c *cursor) boolean() bool {
	if c.opt(`true`) {
		return true
	}
	c.lit(`false`)
	return false
}

// time reads a string as encoding/json does for a time.Time.
func (c *cursor) time() time.Time {
	start := c.i
	c.str()
	var t time.Time
	if !c.ok {
		return t
	}
	if err := t.UnmarshalJSON(c.b[start:c.i]); err != nil {
		c.ok = false
	}
	return t
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
