// Package projections folds Trustlog's event stream into the read model that
// handlers consult: the trust store, the server configuration and the chain
// position. The fold is pure; Projector wraps it with a live feed and
// publishes immutable snapshots behind an atomic pointer.
package projections

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Certificate is one trust-store entry. Values reachable from a Model are
// shared between snapshots and must not be modified.
type Certificate struct {
	// Fingerprint is the lowercase hex SHA-256 of the DER bytes.
	Fingerprint string
	// Name, Type, Restricted, Projects and Description are as in the API.
	Name        string
	Type        string
	Restricted  bool
	Projects    []string
	Description string
	// PEM is the certificate in PEM form, as the API returns it.
	PEM string

	parsed *lazyCert
}

// lazyCert parses a PEM certificate on first use: replaying a large trust
// store must not pay for x509 parsing of entries nobody looks at.
type lazyCert struct {
	once sync.Once
	pem  string
	cert *x509.Certificate
}

func newLazyCert(pemText string) *lazyCert { return &lazyCert{pem: pemText} }

// X509 returns the parsed certificate, or nil if the stored PEM does not
// parse. It is safe for concurrent use.
func (c *Certificate) X509() *x509.Certificate {
	if c.parsed == nil {
		return nil
	}
	c.parsed.once.Do(func() { c.parsed.cert = parsePEM(c.parsed.pem) })
	return c.parsed.cert
}

// NotAfter returns the end of the certificate's validity, or the zero time.
func (c *Certificate) NotAfter() time.Time {
	if x := c.X509(); x != nil {
		return x.NotAfter
	}
	return time.Time{}
}

// Model is an immutable view of the event stream up to a sequence. All its
// methods are safe for concurrent use; returned values must not be modified.
type Model struct {
	seq       uint64
	hash      string
	broken    uint64 // the first break of the hash chain, 0 if none
	brokenWhy string // what broke there
	skipped   uint64
	// certs is the trust store in 256 shards by the fingerprint's first
	// byte: a change copies one shard (a few hundred entries at 100k), not
	// the whole map, so live updates stay cheap at any size.
	certs  [256]map[[32]byte]*Certificate
	ncerts int
	config map[string]string
	// members holds member-local configuration: member → key → value
	// (projections/members.go).
	members map[string]map[string]string

	tokens        [256]map[string]*Token // every token, by id, sharded like certs
	tokenBySecret map[[32]byte]string    // pending tokens: secret hash → id
	ended         *[256]endedHeap        // ended tokens by token shard, for pruning after EndedTokenRetention
	pruneAt       time.Time              // the earliest end time in ended; zero if none

	ca         *CA
	crl        *CRL // the complete list in force
	crlPending *CRL // a list whose parts are still arriving

	identities     map[string]*Identity // by id; few enough to copy whole
	identityByCert map[[32]byte]string  // active TLS identities: fingerprint → id

	challenges map[string]string // pending ACME HTTP-01 challenges: token → key authorization
	serverCert *ServerCertificate
	renewal    *Renewal
}

// Empty is the model of an empty stream.
var Empty = &Model{
	config:        map[string]string{},
	tokenBySecret: map[[32]byte]string{},
}

// Seq returns the sequence of the last event folded in (0 for none).
func (m *Model) Seq() uint64 { return m.seq }

// Hash returns the chain hash of the last event folded in ("" for none).
func (m *Model) Hash() string { return m.hash }

// ChainBreak returns the sequence where the records folded stopped being
// one hash chain (events.CheckLink), or 0 if they are one: the first event
// whose prevhash does not match its predecessor's hash, the first record
// that is not an envelope, the first sequence missing, or the last
// sequence folded delivered again with different content. The first break
// stays: the model holds it for as long as it lives, and a snapshot of it
// is refused (EncodeSnapshot).
func (m *Model) ChainBreak() uint64 { return m.broken }

// ChainBreakReason says what is wrong at ChainBreak, "" if nothing is.
func (m *Model) ChainBreakReason() string { return m.brokenWhy }

// Skipped returns how many events of unknown type were passed over.
func (m *Model) Skipped() uint64 { return m.skipped }

// Certificate returns the entry whose certificate's SHA-256 is sum.
// This is the hot-path lookup: no allocation, no lock.
func (m *Model) Certificate(sum [32]byte) (*Certificate, bool) {
	c, ok := m.certs[sum[0]][sum]
	return c, ok
}

// CertificatesByPrefix returns the entries whose fingerprint starts with
// prefix (lowercase hex), sorted by fingerprint.
func (m *Model) CertificatesByPrefix(prefix string) []*Certificate {
	prefix = strings.ToLower(prefix)
	if sum, ok := ParseFingerprint(prefix); ok {
		if c, ok := m.Certificate(sum); ok {
			return []*Certificate{c}
		}
		return nil
	}
	var out []*Certificate
	for _, shard := range m.certs {
		for _, c := range shard {
			if strings.HasPrefix(c.Fingerprint, prefix) {
				out = append(out, c)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Certificate) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	return out
}

// Certificates returns every entry, sorted by name and then fingerprint.
func (m *Model) Certificates() []*Certificate {
	out := make([]*Certificate, 0, m.ncerts)
	for _, shard := range m.certs {
		out = slices.AppendSeq(out, maps.Values(shard))
	}
	slices.SortFunc(out, func(a, b *Certificate) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Fingerprint, b.Fingerprint)
	})
	return out
}

// NumCertificates returns the size of the trust store.
func (m *Model) NumCertificates() int { return m.ncerts }

// Config returns a copy of the server configuration (set keys only).
func (m *Model) Config() map[string]string { return maps.Clone(m.config) }

// ConfigValue returns the value of a configuration key, "" if unset.
func (m *Model) ConfigValue(key string) string { return m.config[key] }

// Fingerprint returns the SHA-256 of DER bytes, the key of the trust store.
func Fingerprint(der []byte) [32]byte { return sha256.Sum256(der) }

// ParseFingerprint parses a full 64-character hex fingerprint.
func ParseFingerprint(s string) ([32]byte, bool) {
	var sum [32]byte
	if len(s) != 64 {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, true
}

func parsePEM(s string) *x509.Certificate {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return c
}

// CertificateByFingerprint returns the entry with the full hex fingerprint fp.
func (m *Model) CertificateByFingerprint(fp string) (*Certificate, bool) {
	sum, ok := ParseFingerprint(fp)
	if !ok {
		return nil, false
	}
	return m.Certificate(sum)
}
