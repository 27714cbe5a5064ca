package projections_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// tokenSecret returns a test secret's text and the SHA-256 the model finds
// it by.
func tokenSecret(s string) (string, [32]byte) {
	return s, sha256.Sum256([]byte(s))
}

// tokenIssued returns a TokenIssued for id with secret s.
func tokenIssued(id, s string) *events.TokenIssued {
	_, sum := tokenSecret(s)
	return &events.TokenIssued{
		ID: id, Name: "name-" + id, Type: events.CertificateTypeClient,
		SecretHash: hex.EncodeToString(sum[:]), SealedSecret: "sealed-" + id,
		Fingerprint: "server-fp", Addresses: []string{"192.0.2.1:8443"},
		ExpiresAt: baseTime.Add(time.Hour),
	}
}

// tokenView is what a test compares of a token.
type tokenView struct {
	State      string
	EndedAt    time.Time
	RedeemedBy string
}

// tokenState summarises the tokens of m: every token's view, the pending
// ids in PendingTokens order, and, for each secret in secrets, the id
// PendingToken finds ("" if none).
type tokenState struct {
	Tokens  map[string]tokenView
	Pending []string
	Lookup  map[string]string
}

func tokensOf(t *testing.T, m *projections.Model, secrets ...string) tokenState {
	t.Helper()
	st := tokenState{Tokens: map[string]tokenView{}, Lookup: map[string]string{}}
	for _, tok := range m.Tokens() {
		st.Tokens[tok.ID] = tokenView{tok.State, tok.EndedAt, tok.RedeemedBy}
		if got, ok := m.Token(tok.ID); !ok || got != tok {
			t.Errorf("Token(%s) = %v, %v; want the listed token", tok.ID, got, ok)
		}
	}
	for _, tok := range m.PendingTokens() {
		if !tok.Pending() {
			t.Errorf("PendingTokens lists %s in state %s", tok.ID, tok.State)
		}
		st.Pending = append(st.Pending, tok.ID)
	}
	for _, s := range secrets {
		_, sum := tokenSecret(s)
		if tok, ok := m.PendingToken(sum); ok {
			st.Lookup[s] = tok.ID
		} else {
			st.Lookup[s] = ""
		}
	}
	return st
}

// seqTime is the time of the record at seq in a test chain.
func seqTime(seq int) time.Time { return baseTime.Add(time.Duration(seq) * time.Second) }

func TestTokenFold(t *testing.T) {
	t.Parallel()
	pending := tokenView{State: projections.TokenPending}
	tests := []struct {
		name    string
		steps   []step
		secrets []string
		want    tokenState
	}{
		{
			name:    "ok/issued",
			steps:   []step{ev(tokenIssued("t1", "s1"))},
			secrets: []string{"s1", "other"},
			want: tokenState{
				Tokens:  map[string]tokenView{"t1": pending},
				Pending: []string{"t1"},
				Lookup:  map[string]string{"s1": "t1", "other": ""},
			},
		},
		{
			name:    "ok/redeemed",
			steps:   []step{ev(tokenIssued("t1", "s1")), ev(&events.TokenRedeemed{ID: "t1", Fingerprint: "client-fp"})},
			secrets: []string{"s1"},
			want: tokenState{
				Tokens: map[string]tokenView{"t1": {projections.TokenRedeemed, seqTime(2), "client-fp"}},
				Lookup: map[string]string{"s1": ""},
			},
		},
		{
			name:    "ok/revoked",
			steps:   []step{ev(tokenIssued("t1", "s1")), ev(&events.TokenRevoked{ID: "t1"})},
			secrets: []string{"s1"},
			want: tokenState{
				Tokens: map[string]tokenView{"t1": {projections.TokenRevoked, seqTime(2), ""}},
				Lookup: map[string]string{"s1": ""},
			},
		},
		{
			name:    "ok/expired",
			steps:   []step{ev(tokenIssued("t1", "s1")), ev(&events.TokenExpired{ID: "t1"})},
			secrets: []string{"s1"},
			want: tokenState{
				Tokens: map[string]tokenView{"t1": {projections.TokenExpired, seqTime(2), ""}},
				Lookup: map[string]string{"s1": ""},
			},
		},
		{
			// A token ends once: whatever comes later (a racing sweeper, a
			// replayed revoke) changes nothing.
			name: "ok/first-end-wins",
			steps: []step{
				ev(tokenIssued("t1", "s1")),
				ev(&events.TokenRedeemed{ID: "t1", Fingerprint: "client-fp"}),
				ev(&events.TokenExpired{ID: "t1"}),
				ev(&events.TokenRevoked{ID: "t1"}),
				ev(&events.TokenRedeemed{ID: "t1", Fingerprint: "someone-else"}),
			},
			secrets: []string{"s1"},
			want: tokenState{
				Tokens: map[string]tokenView{"t1": {projections.TokenRedeemed, seqTime(2), "client-fp"}},
				Lookup: map[string]string{"s1": ""},
			},
		},
		{
			name: "ok/end-of-unknown-token-ignored",
			steps: []step{
				ev(tokenIssued("t1", "s1")),
				ev(&events.TokenRedeemed{ID: "nope", Fingerprint: "x"}),
				ev(&events.TokenRevoked{ID: "nope"}),
				ev(&events.TokenExpired{ID: ""}),
			},
			secrets: []string{"s1"},
			want: tokenState{
				Tokens:  map[string]tokenView{"t1": pending},
				Pending: []string{"t1"},
				Lookup:  map[string]string{"s1": "t1"},
			},
		},
		{
			name: "ok/other-tokens-untouched",
			steps: []step{
				ev(tokenIssued("t1", "s1")), ev(tokenIssued("t2", "s2")), ev(tokenIssued("t3", "s3")),
				ev(&events.TokenRevoked{ID: "t2"}),
			},
			secrets: []string{"s1", "s2", "s3"},
			want: tokenState{
				Tokens:  map[string]tokenView{"t1": pending, "t2": {projections.TokenRevoked, seqTime(4), ""}, "t3": pending},
				Pending: []string{"t1", "t3"},
				Lookup:  map[string]string{"s1": "t1", "s2": "", "s3": "t3"},
			},
		},
		{
			name: "ok/bad-secret-hash-ignored",
			steps: []step{
				ev(&events.TokenIssued{ID: "bad-hex", SecretHash: "zz"}),
				ev(&events.TokenIssued{ID: "short", SecretHash: "abcd"}),
				ev(&events.TokenIssued{ID: "empty"}),
			},
			want: tokenState{Tokens: map[string]tokenView{}, Lookup: map[string]string{}},
		},
		{
			// Issuing the same id again replaces the token; its old secret
			// no longer finds anything.
			name:    "ok/reissued-id",
			steps:   []step{ev(tokenIssued("t1", "old")), ev(tokenIssued("t1", "new"))},
			secrets: []string{"old", "new"},
			want: tokenState{
				Tokens:  map[string]tokenView{"t1": pending},
				Pending: []string{"t1"},
				Lookup:  map[string]string{"old": "", "new": "t1"},
			},
		},
		{
			name:    "ok/replayed-record-ignored",
			steps:   []step{ev(tokenIssued("t1", "s1")), ev(&events.TokenRevoked{ID: "t1"}), old(1, tokenIssued("t1", "s1"))},
			secrets: []string{"s1"},
			want: tokenState{
				Tokens: map[string]tokenView{"t1": {projections.TokenRevoked, seqTime(2), ""}},
				Lookup: map[string]string{"s1": ""},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch := newChain(t)
			b := projections.NewBuilder(nil)
			for _, s := range tc.steps {
				if err := b.Apply(s(ch)); err != nil {
					t.Fatalf("Apply: %v", err)
				}
			}
			if diff := cmp.Diff(tc.want, tokensOf(t, b.Model(), tc.secrets...)); diff != "" {
				t.Errorf("tokens (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTokenFields checks that an issued token carries every field of its
// event, with the event's time as IssuedAt and [] for absent lists.
func TestTokenFields(t *testing.T) {
	t.Parallel()
	ch := newChain(t)
	_, sum := tokenSecret("s")
	m, err := projections.Apply(nil, ch.next(&events.TokenIssued{
		ID: "t1", Name: "alice", Type: events.CertificateTypeClient, Restricted: true,
		Projects: []string{"p"}, Description: "d", SecretHash: hex.EncodeToString(sum[:]),
		SealedSecret: "sealed", Fingerprint: "fp", Addresses: []string{"a:1"}, ExpiresAt: seqTime(60),
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	m, err = projections.Apply(m, ch.next(&events.TokenIssued{ID: "t2", SecretHash: hex.EncodeToString(make([]byte, 32))}, nil))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.Token("t1")
	if !ok {
		t.Fatal("token t1 not found")
	}
	want := &projections.Token{
		ID: "t1", Name: "alice", Type: "client", Restricted: true, Projects: []string{"p"}, Description: "d",
		SecretHash: sum, SealedSecret: "sealed", Fingerprint: "fp", Addresses: []string{"a:1"},
		IssuedAt: seqTime(1), ExpiresAt: seqTime(60), State: projections.TokenPending,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("token (-want +got):\n%s", diff)
	}
	bare, _ := m.Token("t2")
	if bare.Projects == nil || bare.Addresses == nil || len(bare.Projects)+len(bare.Addresses) != 0 {
		t.Errorf("absent lists = %#v, %#v; want empty, not nil", bare.Projects, bare.Addresses)
	}
	if _, ok := m.Token("t3"); ok {
		t.Error("Token finds an id never issued")
	}
}

// TestPendingTokensOrder checks that pending tokens come oldest first, and
// by id among tokens issued at the same instant.
func TestPendingTokensOrder(t *testing.T) {
	t.Parallel()
	ch := newChain(t)
	b := projections.NewBuilder(nil)
	same := func(e *events.Envelope) { e.Time = baseTime }
	for _, s := range []step{
		ev(tokenIssued("late", "s1")),
		evEdit(tokenIssued("b", "s2"), same),
		evEdit(tokenIssued("a", "s3"), same),
		evEdit(tokenIssued("c", "s4"), same),
	} {
		if err := b.Apply(s(ch)); err != nil {
			t.Fatal(err)
		}
	}
	m := b.Model()
	var pending, all []string
	for _, tok := range m.PendingTokens() {
		pending = append(pending, tok.ID)
	}
	for _, tok := range m.Tokens() {
		all = append(all, tok.ID)
	}
	want := []string{"a", "b", "c", "late"}
	if diff := cmp.Diff(want, pending); diff != "" {
		t.Errorf("PendingTokens order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("Tokens order (-want +got):\n%s", diff)
	}
}

func TestTokenExpiredAt(t *testing.T) {
	t.Parallel()
	exp := baseTime.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		expires time.Time
		now     time.Time
		want    bool
	}{
		{"ok/before", exp, exp.Add(-time.Nanosecond), false},
		{"ok/at-expiry", exp, exp, true},
		{"ok/after", exp, exp.Add(time.Second), true},
		{"ok/never-expires", time.Time{}, baseTime.AddDate(100, 0, 0), false},
		{"ok/other-zone", exp, exp.In(time.FixedZone("UTC+2", 2*3600)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := &projections.Token{State: projections.TokenPending, ExpiresAt: tc.expires}
			if got := tok.ExpiredAt(tc.now); got != tc.want {
				t.Errorf("ExpiredAt(%v) with expiry %v = %v, want %v", tc.now, tc.expires, got, tc.want)
			}
		})
	}
}

// TestTokenSnapshots checks that ending a token in a later snapshot leaves
// earlier snapshots able to find it.
func TestTokenSnapshots(t *testing.T) {
	t.Parallel()
	ch := newChain(t)
	b := projections.NewBuilder(nil)
	apply := func(p events.Payload) {
		t.Helper()
		if err := b.Apply(ch.next(p, nil)); err != nil {
			t.Fatal(err)
		}
	}
	apply(tokenIssued("t1", "s1"))
	apply(tokenIssued("t2", "s2"))
	before := b.Model()
	want := tokensOf(t, before, "s1", "s2")
	apply(&events.TokenRedeemed{ID: "t1", Fingerprint: "fp"})
	apply(&events.TokenExpired{ID: "t2"})
	apply(tokenIssued("t3", "s3"))
	after := b.Model()
	if diff := cmp.Diff(want, tokensOf(t, before, "s1", "s2")); diff != "" {
		t.Errorf("earlier snapshot changed (-before +after):\n%s", diff)
	}
	if got := tokensOf(t, after, "s1", "s2", "s3"); len(got.Pending) != 1 || got.Lookup["s3"] != "t3" {
		t.Errorf("later snapshot = %+v", got)
	}
}

// TestEndedTokensPruned: a token that was redeemed, revoked or expired
// leaves the model once an event EndedTokenRetention later is folded; a
// pending one stays; a model decoded from a snapshot at any point prunes
// exactly as the full replay does.
func TestEndedTokensPruned(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) func(*events.Envelope) {
		return func(e *events.Envelope) { e.Time = baseTime.Add(d) }
	}
	ch := newChain(t)
	recs := []events.Record{
		ch.next(tokenIssued("a", "sa"), at(0)),
		ch.next(tokenIssued("b", "sb"), at(0)),
		ch.next(tokenIssued("c", "sc"), at(0)),
		ch.next(&events.TokenRedeemed{ID: "a", Name: "name-a", Fingerprint: "fp"}, at(time.Minute)),
		ch.next(&events.TokenRevoked{ID: "b", Name: "name-b"}, at(2*time.Minute)),
		ch.next(&events.ConfigChanged{Key: "user.x", Value: "1"}, at(time.Minute+projections.EndedTokenRetention)),
		ch.next(&events.ConfigChanged{Key: "user.x", Value: "2"}, at(time.Minute+projections.EndedTokenRetention+time.Second)),
		ch.next(&events.ConfigChanged{Key: "user.x", Value: "3"}, at(3*time.Minute+projections.EndedTokenRetention)),
	}
	ids := func(m *projections.Model) []string {
		var out []string
		for _, tok := range m.Tokens() {
			out = append(out, tok.ID+":"+tok.State)
		}
		return out
	}
	for _, tc := range []struct {
		upto int
		want []string
	}{
		{5, []string{"a:redeemed", "b:revoked", "c:pending"}},
		{6, []string{"a:redeemed", "b:revoked", "c:pending"}}, // exactly the retention: kept
		{7, []string{"b:revoked", "c:pending"}},
		{8, []string{"c:pending"}},
	} {
		m := fold(t, recs[:tc.upto])
		if diff := cmp.Diff(tc.want, ids(m)); diff != "" {
			t.Errorf("tokens after %d events (-want +got):\n%s", tc.upto, diff)
		}
		if tok, ok := m.PendingToken(sha256.Sum256([]byte("sc"))); !ok || tok.ID != "c" {
			t.Errorf("after %d events the pending token c is not found by its secret", tc.upto)
		}
	}
	full := projections.Digest(fold(t, recs))
	for k := range len(recs) + 1 {
		raw, err := projections.EncodeSnapshot(fold(t, recs[:k]))
		if err != nil {
			t.Fatal(err)
		}
		m, err := projections.DecodeSnapshot(raw)
		if err != nil {
			t.Fatal(err)
		}
		b := projections.NewBuilder(m)
		for _, r := range recs[k:] {
			if err := b.Apply(r); err != nil {
				t.Fatal(err)
			}
		}
		if got := projections.Digest(b.Model()); got != full {
			t.Errorf("snapshot after %d events, then the rest: digest differs from the full replay", k)
		}
	}
}
