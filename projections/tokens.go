package projections

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// EndedTokenRetention is how long, in event time, a token stays in the
// model after it was redeemed, revoked or expired: its operation can still
// be looked at for that long (LXD drops a finished operation within
// seconds). Without it the model would keep every token ever issued.
const EndedTokenRetention = time.Hour

// Token states.
const (
	TokenPending  = "pending"
	TokenRedeemed = "redeemed"
	TokenRevoked  = "revoked"
	TokenExpired  = "expired"
)

// Token is a trust token as the read model knows it. Values reachable from a
// Model must not be modified.
type Token struct {
	ID          string
	Name        string
	Type        string
	Restricted  bool
	Projects    []string
	Description string
	// SecretHash is the SHA-256 of the secret's text.
	SecretHash [32]byte
	// SealedSecret is the secret sealed under the service key.
	SealedSecret string
	// Fingerprint is the server certificate fingerprint the token pins.
	Fingerprint string
	Addresses   []string
	// IssuedAt is the time of the TokenIssued event; ExpiresAt is zero for
	// a token that never expires.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// State is TokenPending, TokenRedeemed, TokenRevoked or TokenExpired;
	// EndedAt is when it left the pending state.
	State   string
	EndedAt time.Time
	// RedeemedBy is the fingerprint of the certificate the token let in.
	RedeemedBy string
	// IdentityID is set on the token of a pending TLS identity.
	IdentityID string
}

// Pending reports whether the token can still be redeemed (ignoring expiry,
// which the caller checks against its clock).
func (t *Token) Pending() bool { return t.State == TokenPending }

// ExpiredAt reports whether a pending token has passed its expiry at now.
func (t *Token) ExpiredAt(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// Token returns the token with operation id.
func (m *Model) Token(id string) (*Token, bool) {
	t, ok := m.tokens[tokenShard(id)][id]
	return t, ok
}

// PendingToken returns the pending token whose secret hashes to sum.
func (m *Model) PendingToken(sum [32]byte) (*Token, bool) {
	id, ok := m.tokenBySecret[sum]
	if !ok {
		return nil, false
	}
	return m.Token(id)
}

// PendingTokens returns the pending tokens, oldest first.
func (m *Model) PendingTokens() []*Token {
	out := make([]*Token, 0, len(m.tokenBySecret))
	for _, id := range m.tokenBySecret {
		if t, ok := m.Token(id); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *Token) int {
		if c := a.IssuedAt.Compare(b.IssuedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Tokens returns every token the model knows, in any state, oldest first.
func (m *Model) Tokens() []*Token {
	var out []*Token
	for _, shard := range m.tokens {
		out = slices.AppendSeq(out, maps.Values(shard))
	}
	slices.SortFunc(out, func(a, b *Token) int {
		if c := a.IssuedAt.Compare(b.IssuedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// tokenShard spreads token ids over 256 shards (FNV-1a of the id), so a
// token event copies one shard rather than every token ever issued.
func tokenShard(id string) byte {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return byte(h)
}

// endedToken is an entry of the model's index of ended tokens.
type endedToken struct {
	at time.Time
	id string
}

// endedHeap orders ended tokens by end time, then id: pruning then depends
// only on which tokens the model holds, never on the order their events
// came in, so that a model decoded from a snapshot prunes as a replay does.
type endedHeap []endedToken

func (h endedHeap) Len() int { return len(h) }
func (h endedHeap) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	return h[i].id < h[j].id
}
func (h endedHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *endedHeap) Push(x any)   { *h = append(*h, x.(endedToken)) }
func (h *endedHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
