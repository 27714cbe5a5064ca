package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"
)

// SnapshotVersion is the format version of EncodeSnapshot. A snapshot of
// another version is refused (and the stream replayed from the start).
const SnapshotVersion = 3

// A snapshot is snapshotMagic, then the gob encoding of a snapshot struct
// without its certificates (uvarint length first), then the certificates
// in a binary form that decodes on every processor with a handful of
// allocations per chunk instead of several per certificate:
//
//	chunks    uvarint count, then per chunk: uvarint length, chunk bytes
//	chunk     uvarint count, then per certificate:
//	          fingerprint (32 raw bytes), name, type, flags (1 byte:
//	          1 = restricted), uvarint count of projects and each project,
//	          description, PEM
//	string    uvarint length, bytes
var snapshotMagic = []byte("trustlog-snapshot\x00\x03")

// ErrSnapshotVersion reports a snapshot written by another format version.
var ErrSnapshotVersion = errors.New("projections: snapshot of an unknown format version")

// ErrSnapshotBroken reports a model whose hash chain is broken (see
// Model.ChainBreak): it is not stored as a snapshot, and a stored one is
// not used, so that a cold start replays and finds the break for itself.
var ErrSnapshotBroken = errors.New("projections: the hash chain of the model is broken")

// snapshot is the serialised form of a Model: what the fold produced, not
// the events. Derived indexes (pending tokens by secret, certificates of
// identities) are rebuilt on decode.
type snapshot struct {
	Version    int
	Seq        uint64
	Hash       string
	Broken     uint64
	Skipped    uint64
	Certs      []snapCert // Digest's form of the certificates; EncodeSnapshot writes them apart
	Config     map[string]string
	Members    map[string]map[string]string `json:",omitempty"` // member-local configuration; absent from older snapshots
	Tokens     []Token
	CA         *snapCA
	CRL        *snapCRL
	CRLPending *snapCRL
	Identities []snapIdentity
	Challenges map[string]string
	ServerCert *ServerCertificate
	Renewal    *Renewal
}

// certChunk is how many certificates a snapshot chunk holds.
const certChunk = 4096

type snapCert struct {
	Fingerprint, Name, Type string
	Restricted              bool
	Projects                []string
	Description, PEM        string
}

type snapCA struct{ PEM, Fingerprint string }

type snapCRL struct {
	IssuerFingerprint, Number string
	ThisUpdate, NextUpdate    time.Time
	SHA256                    string
	Total                     int
	UpdatedAt                 time.Time
	Parts, Seen               int
	Revoked                   []string
}

type snapIdentity struct {
	ID, AuthMethod, Name, Issuer, Subject, Access string
	Projects                                      []string
	Pending                                       bool
	TokenID, Fingerprint, PEM                     string
	CreatedAt, GrantedAt                          time.Time
}

// EncodeSnapshot serialises m: a cold start decodes it and replays only
// the events after m.Seq(), instead of the whole stream. The certificates
// are written shard by shard, each shard in key order, so that a model is
// always written the same way. A model whose hash chain is broken is
// refused with ErrSnapshotBroken.
func EncodeSnapshot(m *Model) ([]byte, error) {
	if m.broken != 0 {
		return nil, fmt.Errorf("%w at sequence %d: %s", ErrSnapshotBroken, m.broken, m.brokenWhy)
	}
	return encodeSnapshot(m)
}

func encodeSnapshot(m *Model) ([]byte, error) {
	s := snapshotOf(m)
	var g bytes.Buffer
	if err := gob.NewEncoder(&g).Encode(&s); err != nil {
		return nil, fmt.Errorf("projections: encode snapshot: %w", err)
	}
	out := make([]byte, 0, len(snapshotMagic)+binary.MaxVarintLen64+g.Len()+m.ncerts*64)
	out = append(out, snapshotMagic...)
	out = binary.AppendUvarint(out, uint64(g.Len()))
	out = append(out, g.Bytes()...)
	out = binary.AppendUvarint(out, uint64((m.ncerts+certChunk-1)/certChunk))
	var chunk []byte
	n := 0 // certificates in chunk
	flush := func() {
		head := binary.AppendUvarint(nil, uint64(n))
		out = binary.AppendUvarint(out, uint64(len(head)+len(chunk)))
		out = append(append(out, head...), chunk...)
		chunk, n = chunk[:0], 0
	}
	var keys [][32]byte
	for _, shard := range m.certs {
		keys = slices.AppendSeq(keys[:0], maps.Keys(shard))
		slices.SortFunc(keys, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
		for _, sum := range keys {
			c := shard[sum]
			chunk = append(chunk, sum[:]...)
			chunk = appendStr(chunk, c.Name)
			chunk = appendStr(chunk, c.Type)
			var flags byte
			if c.Restricted {
				flags = 1
			}
			chunk = append(chunk, flags)
			chunk = binary.AppendUvarint(chunk, uint64(len(c.Projects)))
			for _, p := range c.Projects {
				chunk = appendStr(chunk, p)
			}
			chunk = appendStr(chunk, c.Description)
			chunk = appendStr(chunk, c.PEM)
			if n++; n == certChunk {
				flush()
			}
		}
	}
	if n > 0 {
		flush()
	}
	return out, nil
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// snapshotOf collects what m holds but its certificates (which
// EncodeSnapshot writes its own way, and Digest adds), in a stable order
// (identities by method and name, tokens by issue time).
func snapshotOf(m *Model) snapshot {
	s := snapshot{
		Version: SnapshotVersion, Seq: m.seq, Hash: m.hash, Broken: m.broken, Skipped: m.skipped,
		Config: m.config, Members: m.members, Challenges: m.challenges, ServerCert: m.serverCert, Renewal: m.renewal,
	}
	for _, t := range m.Tokens() {
		s.Tokens = append(s.Tokens, *t)
	}
	if m.ca != nil {
		s.CA = &snapCA{PEM: m.ca.PEM, Fingerprint: m.ca.Fingerprint}
	}
	s.CRL, s.CRLPending = crlOut(m.crl), crlOut(m.crlPending)
	for _, i := range m.Identities() {
		s.Identities = append(s.Identities, snapIdentity{
			ID: i.ID, AuthMethod: i.AuthMethod, Name: i.Name, Issuer: i.Issuer, Subject: i.Subject, Access: i.Access,
			Projects: i.Projects, Pending: i.Pending, TokenID: i.TokenID, Fingerprint: i.Fingerprint, PEM: i.PEM,
			CreatedAt: i.CreatedAt, GrantedAt: i.GrantedAt,
		})
	}
	return s
}

// DecodeSnapshot rebuilds the Model EncodeSnapshot serialised. A snapshot
// of another format is refused with ErrSnapshotVersion, one of a broken
// chain with ErrSnapshotBroken.
func DecodeSnapshot(raw []byte) (*Model, error) {
	rest, ok := bytes.CutPrefix(raw, snapshotMagic)
	if !ok {
		return nil, fmt.Errorf("%w: want format %d", ErrSnapshotVersion, SnapshotVersion)
	}
	r := &reader{b: rest}
	gobPart := r.bytes()
	var chunks [][]byte
	for range r.count(1) {
		chunks = append(chunks, r.bytes())
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errors.New("projections: decode snapshot: truncated or trailing bytes")
	}
	var s snapshot
	if err := gob.NewDecoder(bytes.NewReader(gobPart)).Decode(&s); err != nil {
		return nil, fmt.Errorf("projections: decode snapshot: %w", err)
	}
	if s.Version != SnapshotVersion {
		return nil, fmt.Errorf("%w: %d", ErrSnapshotVersion, s.Version)
	}
	if s.Broken != 0 { // written before EncodeSnapshot refused such models
		return nil, fmt.Errorf("%w at sequence %d", ErrSnapshotBroken, s.Broken)
	}
	b := NewBuilder(nil)
	b.m.seq, b.m.hash, b.m.broken, b.m.skipped = s.Seq, s.Hash, s.Broken, s.Skipped
	for k, v := range s.Config {
		b.config()[k] = v
	}
	b.putMembers(s.Members)
	if err := b.putCerts(chunks); err != nil {
		return nil, err
	}
	for i := range s.Tokens {
		t := s.Tokens[i]
		t.Projects, t.Addresses = nonNil(t.Projects), nonNil(t.Addresses)
		b.tokenShard(t.ID)[t.ID] = &t
		if t.Pending() {
			b.bySecret()[t.SecretHash] = t.ID
		} else {
			b.addEnded(endedToken{at: t.EndedAt, id: t.ID})
		}
	}
	if s.CA != nil {
		b.m.ca = &CA{PEM: s.CA.PEM, Fingerprint: s.CA.Fingerprint, Cert: parsePEM(s.CA.PEM)}
	}
	b.m.crl, b.m.crlPending = crlIn(s.CRL), crlIn(s.CRLPending)
	for _, si := range s.Identities {
		i := &Identity{
			ID: si.ID, AuthMethod: si.AuthMethod, Name: si.Name, Issuer: si.Issuer, Subject: si.Subject, Access: si.Access,
			Projects: nonNil(si.Projects), Pending: si.Pending, TokenID: si.TokenID, Fingerprint: si.Fingerprint, PEM: si.PEM,
			CreatedAt: si.CreatedAt, GrantedAt: si.GrantedAt,
		}
		if si.PEM != "" {
			i.parsed = newLazyCert(si.PEM)
		}
		b.identityMap()[i.ID] = i
		if sum, ok := ParseFingerprint(i.Fingerprint); ok && !i.Pending {
			b.certIdentities()[sum] = i.ID
		}
	}
	for k, v := range s.Challenges {
		b.challengeMap()[k] = v
	}
	if s.ServerCert != nil {
		sc := *s.ServerCert
		sc.Domains = nonNil(sc.Domains)
		b.m.serverCert = &sc
	}
	b.m.renewal = s.Renewal
	return b.Model(), nil
}

// certEntry is a decoded trust-store entry and its key.
type certEntry struct {
	sum [32]byte
	c   *Certificate
}

// putCerts fills the trust store from a snapshot's certificate chunks:
// the chunks are decoded on every processor, then each shard map is made
// at its final size and filled by one of them.
func (b *Builder) putCerts(chunks [][]byte) error {
	made := make([][]certEntry, len(chunks))
	errs := make([]error, len(chunks))
	spread(len(chunks), func(i int) { made[i], errs[i] = decodeCertChunk(chunks[i]) })()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The entries are put in shard order first (a counting sort), so that
	// each filler then fills one shard's map after another: the map being
	// filled stays in cache, where filling all of them at random would
	// miss it on nearly every insert.
	var start [257]int
	for _, chunk := range made {
		for _, e := range chunk {
			start[int(e.sum[0])+1]++
		}
	}
	for i := range 256 {
		start[i+1] += start[i]
	}
	byShard := make([]certEntry, start[256])
	next := start
	for _, chunk := range made {
		for _, e := range chunk {
			byShard[next[e.sum[0]]] = e
			next[e.sum[0]]++
		}
	}
	made = nil
	// Filler w of n fills the shards i with i % n == w.
	n := runtime.GOMAXPROCS(0)
	spread(n, func(w int) {
		for i := w; i < 256; i += n {
			es := byShard[start[i]:start[i+1]]
			if len(es) == 0 {
				continue
			}
			m := make(map[[32]byte]*Certificate, len(es))
			for _, e := range es {
				m[e.sum] = e.c
			}
			b.m.certs[i], b.certsOwned[i] = m, true
		}
	})()
	b.m.ncerts = 0
	for _, sh := range b.m.certs {
		b.m.ncerts += len(sh)
	}
	return nil
}

// decodeCertChunk decodes one chunk of certificates. Their strings are
// pieces of two strings made for the whole chunk (its bytes, and its
// fingerprints in hex), and the entries are elements of two arrays: a
// chunk costs a few allocations, not several per certificate. The price is
// that a chunk's memory is freed once all of its certificates are gone,
// which bounds what a removal can leave behind to the snapshot's size.
func decodeCertChunk(chunk []byte) ([]certEntry, error) {
	all := string(chunk)
	r := &reader{b: chunk, s: all}
	// A certificate takes at least 38 bytes (its fingerprint, then six
	// one-byte lengths or flags).
	n := r.count(38)
	out := make([]certEntry, n)
	hexes := make([]byte, 64*n)
	certs := make([]Certificate, n)
	var lazies []lazyCert
	for j := range certs {
		copy(out[j].sum[:], r.raw(32))
		hex.Encode(hexes[64*j:], out[j].sum[:])
		c := &certs[j]
		c.Name, c.Type = r.str(), r.str()
		flags := r.raw(1)
		c.Restricted = len(flags) == 1 && flags[0]&1 != 0
		c.Projects = make([]string, r.count(1))
		for k := range c.Projects {
			c.Projects[k] = r.str()
		}
		c.Description, c.PEM = r.str(), r.str()
		if c.PEM != "" {
			if lazies == nil {
				lazies = make([]lazyCert, n)
			}
			lazies[j].pem = c.PEM
			c.parsed = &lazies[j]
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errors.New("projections: decode snapshot: a certificate chunk is truncated or too long")
	}
	fps := string(hexes)
	for j := range certs {
		certs[j].Fingerprint = fps[64*j : 64*j+64]
		out[j].c = &certs[j]
	}
	return out, nil
}

// reader reads the snapshot's binary parts. Strings are cut from s, b's
// bytes as a string (only a chunk's reader reads strings). After the first
// error every read returns a zero value.
type reader struct {
	b   []byte
	s   string
	off int // where b starts in s
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b, r.off = r.b[k:], r.off+k
	return v
}

// count reads a count of items that take at least least bytes each.
func (r *reader) count(least int) int {
	v := r.uvarint()
	if v > uint64(len(r.b)/least) {
		r.err = errors.New("count larger than the data")
		return 0
	}
	return int(v)
}

func (r *reader) raw(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errors.New("truncated")
		return nil
	}
	v := r.b[:n]
	r.b, r.off = r.b[n:], r.off+n
	return v
}

func (r *reader) bytes() []byte { return r.raw(r.count(1)) }

func (r *reader) str() string {
	n := r.count(1)
	start := r.off
	if r.raw(n); r.err != nil {
		return ""
	}
	return r.s[start : start+n]
}

func crlOut(c *CRL) *snapCRL {
	if c == nil {
		return nil
	}
	return &snapCRL{
		IssuerFingerprint: c.IssuerFingerprint, Number: c.Number, ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate,
		SHA256: c.SHA256, Total: c.Total, UpdatedAt: c.UpdatedAt, Parts: c.parts, Seen: c.seen, Revoked: c.Serials(),
	}
}

func crlIn(s *snapCRL) *CRL {
	if s == nil {
		return nil
	}
	c := &CRL{
		IssuerFingerprint: s.IssuerFingerprint, Number: s.Number, ThisUpdate: s.ThisUpdate, NextUpdate: s.NextUpdate,
		SHA256: s.SHA256, Total: s.Total, UpdatedAt: s.UpdatedAt, parts: s.Parts, seen: s.Seen,
		revoked: make(map[string]struct{}, len(s.Revoked)),
	}
	for _, r := range s.Revoked {
		c.revoked[r] = struct{}{}
	}
	return c
}

// Digest returns a SHA-256 over a canonical form of everything the model
// holds (but not how it got there): two models with the same digest answer
// every question alike. Fault tests compare an instance's live model with
// a full replay by it.
func Digest(m *Model) string {
	s := snapshotOf(m)
	s.Certs = make([]snapCert, 0, m.ncerts)
	for _, c := range m.Certificates() { // by name
		s.Certs = append(s.Certs, snapCert{c.Fingerprint, c.Name, c.Type, c.Restricted, c.Projects, c.Description, c.PEM})
	}
	// Canonical form: revoked serials sorted, every time in UTC (JSON
	// writes maps in key order).
	for _, c := range []*snapCRL{s.CRL, s.CRLPending} {
		if c != nil {
			slices.Sort(c.Revoked)
		}
	}
	for i := range s.Identities {
		id := &s.Identities[i]
		id.CreatedAt, id.GrantedAt = id.CreatedAt.UTC(), id.GrantedAt.UTC()
	}
	for i := range s.Tokens {
		t := &s.Tokens[i]
		t.IssuedAt, t.ExpiresAt, t.EndedAt = t.IssuedAt.UTC(), t.ExpiresAt.UTC(), t.EndedAt.UTC()
	}
	if s.Renewal != nil {
		r := *s.Renewal
		r.NextAttempt, r.At = r.NextAttempt.UTC(), r.At.UTC()
		s.Renewal = &r
	}
	if s.ServerCert != nil {
		sc := *s.ServerCert
		sc.NotAfter, sc.RotatedAt = sc.NotAfter.UTC(), sc.RotatedAt.UTC()
		s.ServerCert = &sc
	}
	raw, _ := json.Marshal(s)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
