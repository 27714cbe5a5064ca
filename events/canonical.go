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
	c.lit(`{"specversion":`)
	env.SpecVersion = c.str()
	c.lit(`,"id":`)
	env.ID = c.str()
	c.lit(`,"source":`)
	env.Source = c.str()
	c.lit(`,"type":`)
	env.Type = c.str()
	if c.opt(`,"subject":`) {
		env.Subject = c.str()
	}
	c.lit(`,"time":`)
	env.Time = c.time()
	c.lit(`,"datacontenttype":`)
	env.DataContentType = c.str()
	c.lit(`,"data":`)
	if !c.ok {
		return Envelope{}, nil, false
	}
	mk, known := registry[env.Type]
	if !known {
		return Envelope{}, nil, false
	}
	start := c.i
	switch env.Type {
	case certificateTrustedType:
		p = c.certificateTrusted()
	case certificateRemovedType:
		p = c.certificateRemoved()
	case tokenIssuedType:
		p = c.tokenIssued()
	case tokenRedeemedType:
		p = c.tokenRedeemed()
	case tokenRevokedType:
		p = c.tokenRevoked()
	default:
		end := skipValue(raw, c.i)
		if end < 0 {
			return Envelope{}, nil, false
		}
		p = mk()
		if err := json.Unmarshal(raw[start:end], p); err != nil {
			return Envelope{}, nil, false
		}
		c.i = end
	}
	if c.opt(`,"actorname":`) {
		env.ActorName = c.str()
	}
	if c.opt(`,"actormethod":`) {
		env.ActorMethod = c.str()
	}
	if c.opt(`,"actoraddress":`) {
		env.ActorAddress = c.str()
	}
	c.lit(`,"prevhash":`)
	env.PrevHash = c.str()
	c.lit(`}`)
	if !c.ok || c.i != len(raw) || env.check() != nil {
		return Envelope{}, nil, false
	}
	return env, p, true
}

var (
	certificateTrustedType = CertificateTrusted{}.EventType()
	certificateRemovedType = CertificateRemoved{}.EventType()
	tokenIssuedType        = TokenIssued{}.EventType()
	tokenRedeemedType      = TokenRedeemed{}.EventType()
	tokenRevokedType       = TokenRevoked{}.EventType()
)

func (c *cursor) certificateTrusted() *CertificateTrusted {
	p := &CertificateTrusted{}
	c.lit(`{"fingerprint":`)
	p.Fingerprint = c.str()
	c.lit(`,"name":`)
	p.Name = c.str()
	c.lit(`,"type":`)
	p.Type = c.str()
	c.lit(`,"restricted":`)
	p.Restricted = c.boolean()
	c.lit(`,"projects":`)
	p.Projects = c.strs()
	c.lit(`,"description":`)
	p.Description = c.str()
	c.lit(`,"certificate":`)
	p.Certificate = c.str()
	c.lit(`}`)
	return p
}

func (c *cursor) certificateRemoved() *CertificateRemoved {
	p := &CertificateRemoved{}
	c.lit(`{"fingerprint":`)
	p.Fingerprint = c.str()
	c.lit(`,"name":`)
	p.Name = c.str()
	c.lit(`}`)
	return p
}

func (c *cursor) tokenIssued() *TokenIssued {
	p := &TokenIssued{}
	c.lit(`{"id":`)
	p.ID = c.str()
	c.lit(`,"name":`)
	p.Name = c.str()
	c.lit(`,"type":`)
	p.Type = c.str()
	c.lit(`,"restricted":`)
	p.Restricted = c.boolean()
	c.lit(`,"projects":`)
	p.Projects = c.strs()
	c.lit(`,"description":`)
	p.Description = c.str()
	c.lit(`,"secret_sha256":`)
	p.SecretHash = c.str()
	c.lit(`,"sealed_secret":`)
	p.SealedSecret = c.str()
	c.lit(`,"fingerprint":`)
	p.Fingerprint = c.str()
	c.lit(`,"addresses":`)
	p.Addresses = c.strs()
	c.lit(`,"expires_at":`)
	p.ExpiresAt = c.time()
	if c.opt(`,"identity_id":`) {
		p.IdentityID = c.str()
	}
	c.lit(`}`)
	return p
}

func (c *cursor) tokenRedeemed() *TokenRedeemed {
	p := &TokenRedeemed{}
	c.lit(`{"id":`)
	p.ID = c.str()
	c.lit(`,"name":`)
	p.Name = c.str()
	c.lit(`,"fingerprint":`)
	p.Fingerprint = c.str()
	c.lit(`}`)
	return p
}

func (c *cursor) tokenRevoked() *TokenRevoked {
	p := &TokenRevoked{}
	c.lit(`{"id":`)
	p.ID = c.str()
	c.lit(`,"name":`)
	p.Name = c.str()
	c.lit(`}`)
	return p
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
