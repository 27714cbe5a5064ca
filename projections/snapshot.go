package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// SnapshotVersion is the format version of EncodeSnapshot. A snapshot of
// another version is refused (and the stream replayed from the start).
const SnapshotVersion = 2

// ErrSnapshotVersion reports a snapshot written by another format version.
var ErrSnapshotVersion = errors.New("projections: snapshot of an unknown format version")

// snapshot is the serialised form of a Model: what the fold produced, not
// the events. Derived indexes (pending tokens by secret, certificates of
// identities) are rebuilt on decode.
type snapshot struct {
	Version    int
	Seq        uint64
	Hash       string
	Broken     uint64
	Skipped    uint64
	Certs      [][]snapCert // in chunks of certChunk: gob allocates each chunk once
	Config     map[string]string
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

// EncodeSnapshot serialises m (gob): a cold start decodes it and replays
// only the events after m.Seq(), instead of the whole stream.
func EncodeSnapshot(m *Model) ([]byte, error) {
	s := snapshotOf(m)
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s); err != nil {
		return nil, fmt.Errorf("projections: encode snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// snapshotOf collects what m holds, in a stable order (identities by
// method and name, certificates by name, tokens by issue time).
func snapshotOf(m *Model) snapshot {
	s := snapshot{
		Version: SnapshotVersion, Seq: m.seq, Hash: m.hash, Broken: m.broken, Skipped: m.skipped,
		Config: m.config, Certs: make([][]snapCert, 0, m.ncerts/certChunk+1),
		Challenges: m.challenges, ServerCert: m.serverCert, Renewal: m.renewal,
	}
	for _, c := range m.Certificates() {
		if n := len(s.Certs); n == 0 || len(s.Certs[n-1]) == certChunk {
			s.Certs = append(s.Certs, make([]snapCert, 0, min(certChunk, m.ncerts-certChunk*n)))
		}
		last := &s.Certs[len(s.Certs)-1]
		*last = append(*last, snapCert{c.Fingerprint, c.Name, c.Type, c.Restricted, c.Projects, c.Description, c.PEM})
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

// DecodeSnapshot rebuilds the Model EncodeSnapshot serialised.
func DecodeSnapshot(raw []byte) (*Model, error) {
	var s snapshot
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&s); err != nil {
		return nil, fmt.Errorf("projections: decode snapshot: %w", err)
	}
	if s.Version != SnapshotVersion {
		return nil, fmt.Errorf("%w: %d", ErrSnapshotVersion, s.Version)
	}
	b := NewBuilder(nil)
	b.m.seq, b.m.hash, b.m.broken, b.m.skipped = s.Seq, s.Hash, s.Broken, s.Skipped
	for k, v := range s.Config {
		b.config()[k] = v
	}
	if err := b.putCerts(s.Certs); err != nil {
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

// putCerts fills the trust store from a snapshot's certificate chunks:
// the entries are made on every processor, then each shard map is made at
// its final size and filled by one of them.
func (b *Builder) putCerts(chunks [][]snapCert) error {
	type entry struct {
		sum [32]byte
		c   *Certificate
	}
	made := make([][]entry, len(chunks))
	errs := make([]error, len(chunks))
	spread(len(chunks), func(i int) {
		out := make([]entry, len(chunks[i]))
		for j, c := range chunks[i] {
			sum, ok := ParseFingerprint(c.Fingerprint)
			if !ok {
				errs[i] = fmt.Errorf("projections: snapshot: bad fingerprint %q", c.Fingerprint)
				return
			}
			out[j] = entry{sum, &Certificate{
				Fingerprint: c.Fingerprint, Name: c.Name, Type: c.Type, Restricted: c.Restricted,
				Projects: nonNil(c.Projects), Description: c.Description, PEM: c.PEM, parsed: newLazyCert(c.PEM),
			}}
		}
		made[i] = out
	})()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var sizes [256]int
	for _, chunk := range made {
		for _, e := range chunk {
			sizes[e.sum[0]]++
		}
	}
	for i := range b.m.certs {
		if sizes[i] > 0 {
			b.m.certs[i], b.certsOwned[i] = make(map[[32]byte]*Certificate, sizes[i]), true
		}
	}
	// Filler w of n fills the shards i with i % n == w.
	n := runtime.GOMAXPROCS(0)
	spread(n, func(w int) {
		for _, chunk := range made {
			for _, e := range chunk {
				if int(e.sum[0])%n == w {
					b.m.certs[e.sum[0]][e.sum] = e.c
				}
			}
		}
	})()
	b.m.ncerts = 0
	for _, sh := range b.m.certs {
		b.m.ncerts += len(sh)
	}
	return nil
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
