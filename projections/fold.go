package projections

import (
	"container/heap"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustlog/trustlog/events"
)

// Apply folds one stored event into m and returns the resulting model; m is
// not modified. It is pure: no I/O, no clock. Events at or below m.Seq() are
// ignored, so applying a record twice is harmless (but a repeat of m.Seq()
// with other content breaks the chain, see Model.ChainBreak). An event of
// unknown type advances the sequence and is counted in Skipped. A record
// that does not decode is passed over as Builder.Apply does: the returned
// model has advanced past it, and the error says why.
//
// Apply copies the maps it changes; to fold many events, use a Builder.
func Apply(m *Model, rec events.Record) (*Model, error) {
	b := NewBuilder(m)
	err := b.Apply(rec)
	return b.Model(), err
}

// Builder folds a run of events into a model, copying each map at most once
// per published snapshot. A Builder is not safe for concurrent use.
type Builder struct {
	m           Model
	certsOwned  [256]bool
	configOwned bool
	tokensOwned [256]bool
	secretOwned bool
	endedOwned  [256]bool
	endedArray  bool // the ended array itself is the builder's

	identitiesOwned   bool
	identityCertOwned bool
	challengesOwned   bool
	membersOwned      bool
}

// NewBuilder starts from base (Empty if nil). base is never modified.
func NewBuilder(base *Model) *Builder {
	if base == nil {
		base = Empty
	}
	return &Builder{m: *base}
}

// Seq returns the sequence of the last event folded in.
func (b *Builder) Seq() uint64 { return b.m.seq }

// Hash returns the chain hash of the last event folded in.
func (b *Builder) Hash() string { return b.m.hash }

// Model returns an immutable snapshot of the fold so far. Later calls to
// Apply do not change it.
func (b *Builder) Model() *Model {
	snap := b.m
	b.certsOwned = [256]bool{}
	b.tokensOwned = [256]bool{}
	b.endedOwned, b.endedArray = [256]bool{}, false
	b.configOwned, b.secretOwned = false, false
	b.identitiesOwned, b.identityCertOwned, b.challengesOwned = false, false, false
	b.membersOwned = false
	return &snap
}

// ChainBreak returns the first break of the hash chain folded so far (see
// Model.ChainBreak).
func (b *Builder) ChainBreak() (seq uint64, reason string) { return b.m.broken, b.m.brokenWhy }

// Apply folds one stored event. A record that does not decode (or whose
// type is unknown) is passed over: the sequence advances, Skipped counts it,
// and for a record that does not decode the error says why. A record at or
// below the sequence folded so far changes nothing but, if it repeats the
// last one with other content, the chain's state (see Model.ChainBreak).
func (b *Builder) Apply(rec events.Record) error {
	if rec.Seq <= b.m.seq {
		b.repeat(rec)
		return nil
	}
	return b.fold(decode(rec))
}

// repeat checks a record delivered again: only the last one folded can be
// compared, and only its hash is kept.
func (b *Builder) repeat(rec events.Record) {
	if rec.Seq != b.m.seq || b.m.broken != 0 {
		return
	}
	b.link(events.Link{Seq: rec.Seq, Hash: events.Hash(rec.Raw)}, "", true)
}

// link records the first break of the chain, if next does not follow the
// last record folded.
func (b *Builder) link(next events.Link, prevHash string, envelope bool) {
	if b.m.broken != 0 {
		return
	}
	if brk := events.CheckLink(events.Link{Seq: b.m.seq, Hash: b.m.hash}, next, prevHash, envelope); brk != nil {
		b.m.broken, b.m.brokenWhy = brk.Seq, brk.Reason
	}
}

// decoded is a stored event made ready to fold: the part of folding that
// does not depend on the model, so that it can run ahead in parallel.
type decoded struct {
	seq  uint64
	hash string
	env  events.Envelope
	p    events.Payload
	err  error
}

func decode(rec events.Record) decoded {
	env, p, err := events.DecodeRecord(rec.Raw)
	return decoded{seq: rec.Seq, hash: events.Hash(rec.Raw), env: env, p: p, err: err}
}

func (b *Builder) fold(d decoded) error {
	envelope := d.env.Type != "" // Type is empty only when the envelope does not decode
	b.link(events.Link{Seq: d.seq, Hash: d.hash}, d.env.PrevHash, envelope)
	b.m.seq, b.m.hash = d.seq, d.hash
	if !envelope {
		b.m.skipped++
		return fmt.Errorf("projections: event %d: %w", d.seq, d.err)
	}
	switch {
	case errors.Is(d.err, events.ErrUnknownType):
		b.m.skipped++
	case d.err != nil:
		b.m.skipped++
		return fmt.Errorf("projections: event %d: %w", d.seq, d.err)
	default:
		b.apply(d.p, d.env.Time)
		b.pruneTokens(d.env.Time)
	}
	return nil
}

func (b *Builder) apply(p events.Payload, at time.Time) {
	switch e := p.(type) {
	case *events.CertificateTrusted:
		sum, ok := ParseFingerprint(e.Fingerprint)
		if !ok {
			return
		}
		b.putCert(sum, &Certificate{
			Fingerprint: e.Fingerprint,
			Name:        e.Name,
			Type:        e.Type,
			Restricted:  e.Restricted,
			Projects:    nonNil(e.Projects),
			Description: e.Description,
			PEM:         e.Certificate,
			parsed:      newLazyCert(e.Certificate),
		})
	case *events.CertificateUpdated:
		sum, ok := ParseFingerprint(e.Fingerprint)
		if !ok {
			return
		}
		old, ok := b.m.Certificate(sum)
		if !ok {
			return
		}
		next := *old
		next.Name, next.Restricted, next.Projects, next.Description = e.Name, e.Restricted, nonNil(e.Projects), e.Description
		if e.NewFingerprint != "" && e.NewFingerprint != e.Fingerprint {
			nsum, ok := ParseFingerprint(e.NewFingerprint)
			if !ok {
				return
			}
			b.deleteCert(sum)
			sum = nsum
			next.Fingerprint = e.NewFingerprint
		}
		if e.Certificate != "" && e.Certificate != old.PEM {
			next.PEM, next.parsed = e.Certificate, newLazyCert(e.Certificate)
		}
		b.putCert(sum, &next)
	case *events.CertificateRemoved:
		if sum, ok := ParseFingerprint(e.Fingerprint); ok {
			b.deleteCert(sum)
		}
	case *events.ConfigChanged:
		if e.Value == "" {
			delete(b.config(), e.Key)
		} else {
			b.config()[e.Key] = e.Value
		}
	case *events.ConfigMemberChanged:
		b.applyMember(e)
	case *events.TokenIssued:
		sum, err := hex.DecodeString(e.SecretHash)
		if err != nil || len(sum) != 32 {
			return
		}
		t := &Token{
			ID: e.ID, Name: e.Name, Type: e.Type, Restricted: e.Restricted, Projects: nonNil(e.Projects),
			Description: e.Description, SecretHash: [32]byte(sum), SealedSecret: e.SealedSecret,
			Fingerprint: e.Fingerprint, Addresses: nonNil(e.Addresses), IssuedAt: at, ExpiresAt: e.ExpiresAt,
			State: TokenPending, IdentityID: e.IdentityID,
		}
		if old, ok := b.m.Token(t.ID); ok && old.Pending() {
			delete(b.bySecret(), old.SecretHash)
		}
		b.tokenShard(t.ID)[t.ID] = t
		b.bySecret()[t.SecretHash] = t.ID
		if i, ok := b.m.identities[e.IdentityID]; ok && i.Pending && e.IdentityID != "" {
			next := *i
			next.TokenID = t.ID
			b.identityMap()[i.ID] = &next
		}
	case *events.CAChanged:
		b.m.crl, b.m.crlPending = nil, nil
		if e.Certificate == "" {
			b.m.ca = nil
			return
		}
		b.m.ca = &CA{PEM: e.Certificate, Fingerprint: e.Fingerprint, Cert: parsePEM(e.Certificate)}
	case *events.CRLUpdated:
		if b.m.ca == nil || e.IssuerFingerprint != b.m.ca.Fingerprint {
			return
		}
		c := &CRL{
			IssuerFingerprint: e.IssuerFingerprint, Number: e.Number, ThisUpdate: e.ThisUpdate,
			NextUpdate: e.NextUpdate, SHA256: e.SHA256, Total: e.Total, UpdatedAt: at,
			parts: max(e.Parts, 1), seen: 1, revoked: make(map[string]struct{}, e.Total),
		}
		for _, s := range e.Revoked {
			c.revoked[s] = struct{}{}
		}
		b.placeCRL(c)
	case *events.CRLRevocations:
		p := b.m.crlPending
		if p == nil || p.SHA256 != e.SHA256 || e.Part != p.seen+1 {
			return
		}
		// The pending list may be shared with a published snapshot: copy it.
		next := *p
		next.revoked = maps.Clone(p.revoked)
		for _, s := range e.Revoked {
			next.revoked[s] = struct{}{}
		}
		next.seen++
		b.placeCRL(&next)
	case *events.TokenRedeemed:
		b.endToken(e.ID, TokenRedeemed, at, e.Fingerprint)
	case *events.TokenRevoked:
		b.endToken(e.ID, TokenRevoked, at, "")
	case *events.TokenExpired:
		b.endToken(e.ID, TokenExpired, at, "")
	case *events.IdentityCreated, *events.IdentityGranted, *events.IdentityActivated, *events.IdentityRemoved:
		b.applyIdentity(p, at)
	case *events.ACMEChallengePresented, *events.ACMEChallengeCleaned, *events.ServerCertificateRotated, *events.ACMERenewal:
		b.applyACME(p, at)
	}
}

// placeCRL puts a list in force once all its parts are in, and keeps it
// pending until then.
func (b *Builder) placeCRL(c *CRL) {
	if c.Complete() {
		b.m.crl, b.m.crlPending = c, nil
		return
	}
	b.m.crlPending = c
}

// endToken moves a pending token to a final state.
func (b *Builder) endToken(id, state string, at time.Time, by string) {
	old, ok := b.m.Token(id)
	if !ok || !old.Pending() {
		return
	}
	next := *old
	next.State, next.EndedAt, next.RedeemedBy = state, at, by
	b.tokenShard(id)[id] = &next
	delete(b.bySecret(), old.SecretHash)
	b.addEnded(endedToken{at: at, id: id})
	// A pending TLS identity lives only as long as its token.
	if state != TokenRedeemed && old.IdentityID != "" {
		if i, ok := b.m.identities[old.IdentityID]; ok && i.Pending {
			b.removeIdentity(old.IdentityID)
		}
	}
}

// pruneTokens drops the tokens that ended more than EndedTokenRetention
// before at, the time of the event just folded. Which tokens go depends
// only on the model's tokens and at, never on the order of earlier events,
// so a model decoded from a snapshot prunes as the full replay does.
func (b *Builder) pruneTokens(at time.Time) {
	limit := at.Add(-EndedTokenRetention)
	if b.m.pruneAt.IsZero() || !b.m.pruneAt.Before(limit) {
		return
	}
	var next time.Time
	for i := range b.m.ended { // not nil: pruneAt is set
		for len(b.m.ended[i]) > 0 && b.m.ended[i][0].at.Before(limit) {
			e := heap.Pop(b.endedShard(i)).(endedToken)
			if t, ok := b.m.Token(e.id); ok && !t.Pending() && t.EndedAt.Equal(e.at) {
				delete(b.tokenShard(e.id), e.id)
			}
		}
		if h := b.m.ended[i]; len(h) > 0 && (next.IsZero() || h[0].at.Before(next)) {
			next = h[0].at
		}
	}
	b.m.pruneAt = next
}

// addEnded indexes a token that has just ended.
func (b *Builder) addEnded(e endedToken) {
	heap.Push(b.endedShard(int(tokenShard(e.id))), e)
	if b.m.pruneAt.IsZero() || e.at.Before(b.m.pruneAt) {
		b.m.pruneAt = e.at
	}
}

// endedShard returns the builder's own copy of one shard of the
// ended-token index: like the token maps, a change copies one shard.
func (b *Builder) endedShard(i int) *endedHeap {
	if !b.endedArray {
		arr := new([256]endedHeap)
		if b.m.ended != nil {
			*arr = *b.m.ended
		}
		b.m.ended, b.endedArray = arr, true
	}
	if !b.endedOwned[i] {
		b.m.ended[i] = slices.Clone(b.m.ended[i])
		b.endedOwned[i] = true
	}
	return &b.m.ended[i]
}

func (b *Builder) tokenShard(id string) map[string]*Token {
	i := tokenShard(id)
	if !b.tokensOwned[i] {
		b.m.tokens[i] = maps.Clone(b.m.tokens[i])
		if b.m.tokens[i] == nil {
			b.m.tokens[i] = map[string]*Token{}
		}
		b.tokensOwned[i] = true
	}
	return b.m.tokens[i]
}

func (b *Builder) bySecret() map[[32]byte]string {
	if !b.secretOwned {
		b.m.tokenBySecret = maps.Clone(b.m.tokenBySecret)
		if b.m.tokenBySecret == nil {
			b.m.tokenBySecret = map[[32]byte]string{}
		}
		b.secretOwned = true
	}
	return b.m.tokenBySecret
}

// shard returns the writable shard of sum, copying it first if it may be
// shared with a published snapshot.
func (b *Builder) shard(sum [32]byte) map[[32]byte]*Certificate {
	i := sum[0]
	if !b.certsOwned[i] {
		b.m.certs[i] = maps.Clone(b.m.certs[i])
		if b.m.certs[i] == nil {
			b.m.certs[i] = map[[32]byte]*Certificate{}
		}
		b.certsOwned[i] = true
	}
	return b.m.certs[i]
}

func (b *Builder) putCert(sum [32]byte, c *Certificate) {
	sh := b.shard(sum)
	if _, ok := sh[sum]; !ok {
		b.m.ncerts++
	}
	sh[sum] = c
}

func (b *Builder) deleteCert(sum [32]byte) {
	if _, ok := b.m.certs[sum[0]][sum]; !ok {
		return
	}
	delete(b.shard(sum), sum)
	b.m.ncerts--
}

func (b *Builder) config() map[string]string {
	if !b.configOwned {
		b.m.config = maps.Clone(b.m.config)
		if b.m.config == nil {
			b.m.config = map[string]string{}
		}
		b.configOwned = true
	}
	return b.m.config
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ApplyAll folds recs in order, as Apply on each would, decoding them on
// all processors ahead of the fold: a replay's time goes into decoding.
// report, if not nil, receives the error of each record Apply would have
// returned one for.
func (b *Builder) ApplyAll(recs []events.Record, report func(seq uint64, err error)) {
	const chunk = 64
	if len(recs) < 2*chunk || runtime.GOMAXPROCS(0) == 1 {
		for _, rec := range recs {
			if err := b.Apply(rec); err != nil && report != nil {
				report(rec.Seq, err)
			}
		}
		return
	}
	out := make([]decoded, len(recs))
	chunks := (len(recs) + chunk - 1) / chunk
	ready := make([]chan struct{}, chunks)
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	base := b.m.seq
	// Chunks are decoded in order while the fold below follows them.
	spread(chunks, func(c int) {
		for i := c * chunk; i < min((c+1)*chunk, len(recs)); i++ {
			if recs[i].Seq > base {
				out[i] = decode(recs[i])
			}
		}
		close(ready[c])
	})
	for c := range chunks {
		<-ready[c]
		for i := c * chunk; i < min((c+1)*chunk, len(recs)); i++ {
			if recs[i].Seq <= b.m.seq {
				b.repeat(recs[i])
				continue
			}
			if err := b.fold(out[i]); err != nil && report != nil {
				report(recs[i].Seq, err)
			}
			out[i] = decoded{}
		}
	}
}

// spread calls fn(i) for every i in [0, n), on as many goroutines as there
// are processors, taking the indexes in order; the returned wait returns
// once every call has.
func spread(n int, fn func(i int)) (wait func()) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), max(n, 1)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	return wg.Wait
}
