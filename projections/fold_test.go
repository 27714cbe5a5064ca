package projections_test

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// certView is what a test compares of a trust-store entry.
type certView struct {
	Fingerprint string
	Name        string
	Type        string
	Restricted  bool
	Projects    []string
	Description string
	PEM         string
	NotAfter    time.Time // zero when the PEM did not parse
}

// modelView is what a test compares of a model.
type modelView struct {
	Seq     uint64
	Broken  uint64
	Why     string // the reason of Broken
	Skipped uint64
	Certs   []certView
	Config  map[string]string
	Tokens  map[string]string // id → state
	Pending []string          // ids of pending tokens
}

// view summarises m, and checks on the way that every entry is found by
// each of the model's lookups.
func view(t *testing.T, m *projections.Model) modelView {
	t.Helper()
	v := modelView{Seq: m.Seq(), Broken: m.ChainBreak(), Why: m.ChainBreakReason(), Skipped: m.Skipped(), Config: m.Config()}
	for _, c := range m.Certificates() {
		v.Certs = append(v.Certs, certView{c.Fingerprint, c.Name, c.Type, c.Restricted, c.Projects, c.Description, c.PEM, c.NotAfter()})
		sum, ok := projections.ParseFingerprint(c.Fingerprint)
		if !ok {
			t.Errorf("entry with unparsable fingerprint %q", c.Fingerprint)
			continue
		}
		if got, ok := m.Certificate(sum); !ok || got != c {
			t.Errorf("Certificate(%s) = %v, %v; want the listed entry", c.Fingerprint, got, ok)
		}
		if got, ok := m.CertificateByFingerprint(strings.ToUpper(c.Fingerprint)); !ok || got != c {
			t.Errorf("CertificateByFingerprint(upper %s) = %v, %v; want the listed entry", c.Fingerprint, got, ok)
		}
		if got := m.CertificatesByPrefix(c.Fingerprint[:6]); !containsCert(got, c) {
			t.Errorf("CertificatesByPrefix(%s) misses the entry", c.Fingerprint[:6])
		}
		if x := c.X509(); x != nil && projections.Fingerprint(x.Raw) != sum {
			t.Errorf("entry %s holds a certificate with another fingerprint", c.Fingerprint)
		}
	}
	if n := m.NumCertificates(); n != len(v.Certs) {
		t.Errorf("NumCertificates() = %d, Certificates() has %d", n, len(v.Certs))
	}
	for k, val := range v.Config {
		if m.ConfigValue(k) != val {
			t.Errorf("ConfigValue(%q) = %q, Config() has %q", k, m.ConfigValue(k), val)
		}
	}
	for _, tok := range m.Tokens() {
		if v.Tokens == nil {
			v.Tokens = map[string]string{}
		}
		v.Tokens[tok.ID] = tok.State
	}
	for _, tok := range m.PendingTokens() {
		v.Pending = append(v.Pending, tok.ID)
	}
	return v
}

func containsCert(list []*projections.Certificate, c *projections.Certificate) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// step makes the next record of a test stream.
type step func(c *chain) events.Record

func ev(p events.Payload) step { return func(c *chain) events.Record { return c.next(p, nil) } }

func evEdit(p events.Payload, edit func(*events.Envelope)) step {
	return func(c *chain) events.Record { return c.next(p, edit) }
}

// old makes a record at an already applied sequence.
func old(seq uint64, p events.Payload) step {
	return func(c *chain) events.Record { return c.at(seq, p) }
}

// again repeats the last record, byte for byte.
func again() step { return func(c *chain) events.Record { return c.last } }

func TestApply(t *testing.T) {
	t.Parallel()
	c0, c1, c2 := certs()[0], certs()[1], certs()[2]
	entry := func(c testCert, name string) certView {
		return certView{Fingerprint: c.FP, Name: name, Type: "client", Projects: []string{}, PEM: c.PEM, NotAfter: c.NotAfter}
	}
	noConfig := map[string]string{}
	tests := []struct {
		name    string
		steps   []step
		want    modelView
		wantErr bool // the last step reports an error
	}{
		{
			name:  "ok/empty",
			steps: nil,
			want:  modelView{Config: noConfig},
		},
		{
			name:  "ok/trusted",
			steps: []step{ev(trusted(c0, "a")), ev(trusted(c1, "b"))},
			want:  modelView{Seq: 2, Certs: []certView{entry(c0, "a"), entry(c1, "b")}, Config: noConfig},
		},
		{
			name: "ok/trusted with all fields",
			steps: []step{ev(&events.CertificateTrusted{
				Fingerprint: c0.FP, Name: "m", Type: events.CertificateTypeMetrics,
				Restricted: true, Projects: []string{"p1", "p2"}, Description: "d", Certificate: c0.PEM,
			})},
			want: modelView{Seq: 1, Certs: []certView{{
				Fingerprint: c0.FP, Name: "m", Type: "metrics", Restricted: true,
				Projects: []string{"p1", "p2"}, Description: "d", PEM: c0.PEM, NotAfter: c0.NotAfter,
			}}, Config: noConfig},
		},
		{
			name: "ok/trusted with nil projects",
			steps: []step{ev(&events.CertificateTrusted{
				Fingerprint: c0.FP, Name: "a", Type: "client", Certificate: c0.PEM,
			})},
			want: modelView{Seq: 1, Certs: []certView{entry(c0, "a")}, Config: noConfig},
		},
		{
			name: "ok/trusted with a PEM that does not parse",
			steps: []step{ev(&events.CertificateTrusted{
				Fingerprint: c0.FP, Name: "a", Type: "client", Projects: []string{}, Certificate: "not a certificate",
			})},
			want: modelView{Seq: 1, Certs: []certView{{
				Fingerprint: c0.FP, Name: "a", Type: "client", Projects: []string{}, PEM: "not a certificate",
			}}, Config: noConfig},
		},
		{
			name:  "ok/trusted with a bad fingerprint is ignored",
			steps: []step{ev(&events.CertificateTrusted{Fingerprint: "abc", Name: "a", Certificate: c0.PEM})},
			want:  modelView{Seq: 1, Config: noConfig},
		},
		{
			name: "ok/updated in place",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(&events.CertificateUpdated{
					Fingerprint: c0.FP, Name: "a2", Restricted: true, Projects: []string{"p"}, Description: "new",
					Certificate: c0.PEM,
				}),
			},
			want: modelView{Seq: 2, Certs: []certView{{
				Fingerprint: c0.FP, Name: "a2", Type: "client", Restricted: true, Projects: []string{"p"},
				Description: "new", PEM: c0.PEM, NotAfter: c0.NotAfter,
			}}, Config: noConfig},
		},
		{
			name: "ok/updated without certificate keeps it",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(&events.CertificateUpdated{Fingerprint: c0.FP, Name: "a2"}),
			},
			want: modelView{Seq: 2, Certs: []certView{{
				Fingerprint: c0.FP, Name: "a2", Type: "client", Projects: []string{}, PEM: c0.PEM, NotAfter: c0.NotAfter,
			}}, Config: noConfig},
		},
		{
			name: "ok/updated with re-key",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(trusted(c2, "other")),
				ev(&events.CertificateUpdated{
					Fingerprint: c0.FP, NewFingerprint: c1.FP, Name: "a", Projects: []string{}, Certificate: c1.PEM,
				}),
			},
			want: modelView{Seq: 3, Certs: []certView{entry(c1, "a"), entry(c2, "other")}, Config: noConfig},
		},
		{
			name: "ok/updated of an unknown entry is ignored",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(&events.CertificateUpdated{Fingerprint: c1.FP, NewFingerprint: c2.FP, Name: "x", Certificate: c2.PEM}),
			},
			want: modelView{Seq: 2, Certs: []certView{entry(c0, "a")}, Config: noConfig},
		},
		{
			name: "ok/removed",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(trusted(c1, "b")),
				ev(&events.CertificateRemoved{Fingerprint: c0.FP, Name: "a"}),
			},
			want: modelView{Seq: 3, Certs: []certView{entry(c1, "b")}, Config: noConfig},
		},
		{
			name: "ok/removed then trusted again",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(&events.CertificateRemoved{Fingerprint: c0.FP, Name: "a"}),
				ev(trusted(c0, "a-again")),
			},
			want: modelView{Seq: 3, Certs: []certView{entry(c0, "a-again")}, Config: noConfig},
		},
		{
			name:  "ok/removed unknown entry",
			steps: []step{ev(&events.CertificateRemoved{Fingerprint: c0.FP})},
			want:  modelView{Seq: 1, Config: noConfig},
		},
		{
			name: "ok/config set, overwritten and unset",
			steps: []step{
				ev(&events.ConfigChanged{Key: "core.https_address", Value: "127.0.0.1:8443"}),
				ev(&events.ConfigChanged{Key: "core.trust_password", Value: "x"}),
				ev(&events.ConfigChanged{Key: "core.https_address", Value: "[::1]:8443"}),
				ev(&events.ConfigChanged{Key: "core.trust_password", Value: ""}),
			},
			want: modelView{Seq: 4, Config: map[string]string{"core.https_address": "[::1]:8443"}},
		},
		{
			name:  "ok/config unset of a key never set",
			steps: []step{ev(&events.ConfigChanged{Key: "k", Value: ""})},
			want:  modelView{Seq: 1, Config: noConfig},
		},
		{
			name: "ok/old sequences change nothing",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(&events.ConfigChanged{Key: "k", Value: "v"}),
				old(1, &events.CertificateRemoved{Fingerprint: c0.FP}),
				again(),
				old(1, trusted(c1, "b")),
			},
			want: modelView{Seq: 2, Certs: []certView{entry(c0, "a")}, Config: map[string]string{"k": "v"}},
		},
		{
			name: "ok/the last sequence again with other content breaks the chain and changes nothing else",
			steps: []step{
				ev(trusted(c0, "a")),
				ev(&events.ConfigChanged{Key: "k", Value: "v"}),
				old(2, &events.ConfigChanged{Key: "k", Value: ""}),
				old(2, trusted(c1, "b")),
			},
			want: modelView{Seq: 2, Broken: 2, Why: "sequence 2 was delivered again with different content",
				Certs: []certView{entry(c0, "a")}, Config: map[string]string{"k": "v"}},
		},
		{
			name: "ok/unknown type is skipped and the sequence advances",
			steps: []step{
				ev(trusted(c0, "a")),
				evEdit(&events.ConfigChanged{Key: "k", Value: "v"}, func(e *events.Envelope) { e.Type = "trustlog.future.thing.v9" }),
				ev(&events.ConfigChanged{Key: "k2", Value: "v2"}),
			},
			want: modelView{Seq: 3, Skipped: 1, Certs: []certView{entry(c0, "a")}, Config: map[string]string{"k2": "v2"}},
		},
		{
			name: "fail/data that does not decode is skipped",
			steps: []step{
				ev(&events.ConfigChanged{Key: "k", Value: "v"}),
				evEdit(&events.ConfigChanged{}, func(e *events.Envelope) { e.Data = json.RawMessage(`{"key":1}`) }),
			},
			want:    modelView{Seq: 2, Skipped: 1, Config: map[string]string{"k": "v"}},
			wantErr: true,
		},
		{
			name: "fail/envelope that does not decode is skipped, and breaks the chain",
			steps: []step{
				ev(&events.ConfigChanged{Key: "k", Value: "v"}),
				evEdit(&events.ConfigChanged{}, func(e *events.Envelope) { e.ID = "" }),
			},
			want: modelView{Seq: 2, Broken: 2, Why: "the record is not a Trustlog event envelope, so it names no predecessor",
				Skipped: 1, Config: map[string]string{"k": "v"}},
			wantErr: true,
		},
		{
			name: "ok/chain break reports the first bad sequence",
			steps: []step{
				ev(&events.ConfigChanged{Key: "a", Value: "1"}),
				ev(&events.ConfigChanged{Key: "b", Value: "2"}),
				evEdit(&events.ConfigChanged{Key: "c", Value: "3"}, func(e *events.Envelope) { e.PrevHash = strings.Repeat("0", 64) }),
				ev(&events.ConfigChanged{Key: "d", Value: "4"}),
				evEdit(&events.ConfigChanged{Key: "e", Value: "5"}, func(e *events.Envelope) { e.PrevHash = "" }),
			},
			want: modelView{Seq: 5, Broken: 3, Why: "its prevhash does not match the hash of event 2",
				Config: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}},
		},
		{
			name: "ok/first event must have an empty previous hash",
			steps: []step{
				evEdit(&events.ConfigChanged{Key: "a", Value: "1"}, func(e *events.Envelope) { e.PrevHash = strings.Repeat("f", 64) }),
			},
			want: modelView{Seq: 1, Broken: 1, Why: "the first event names a predecessor (its prevhash is not empty)", Config: map[string]string{"a": "1"}},
		},
		{
			name: "ok/chain break after a skipped event",
			steps: []step{
				ev(&events.ConfigChanged{Key: "a", Value: "1"}),
				evEdit(&events.ConfigChanged{}, func(e *events.Envelope) { e.Type = "trustlog.future.thing.v9" }),
				evEdit(&events.ConfigChanged{Key: "b", Value: "2"}, func(e *events.Envelope) { e.PrevHash = "x" }),
			},
			want: modelView{Seq: 3, Broken: 3, Why: "its prevhash does not match the hash of event 2", Skipped: 1,
				Config: map[string]string{"a": "1", "b": "2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newChain(t)
			var recs []events.Record
			for _, s := range tt.steps {
				recs = append(recs, s(c))
			}

			b := projections.NewBuilder(nil)
			m := projections.Empty
			var lastErr, lastFuncErr error
			for _, r := range recs {
				lastErr = b.Apply(r)
				m, lastFuncErr = projections.Apply(m, r)
			}
			if (lastErr != nil) != tt.wantErr {
				t.Errorf("Builder.Apply of the last record = %v, want error %v", lastErr, tt.wantErr)
			}
			if (lastFuncErr != nil) != tt.wantErr {
				t.Errorf("Apply of the last record = %v, want error %v", lastFuncErr, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, view(t, b.Model())); diff != "" {
				t.Errorf("Builder model (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, view(t, m)); diff != "" {
				t.Errorf("Apply model (-want +got):\n%s", diff)
			}
			if b.Seq() != tt.want.Seq {
				t.Errorf("Builder.Seq() = %d, want %d", b.Seq(), tt.want.Seq)
			}
			wantHash := ""
			if tt.want.Seq > 0 {
				wantHash = events.Hash(recs[tt.want.Seq-1].Raw)
			}
			if got := b.Model().Hash(); got != wantHash {
				t.Errorf("Hash() = %s, want %s (the hash of record %d)", got, wantHash, tt.want.Seq)
			}
		})
	}
	if diff := cmp.Diff(modelView{Config: map[string]string{}}, view(t, projections.Empty)); diff != "" {
		t.Errorf("Empty was modified (-want +got):\n%s", diff)
	}
}

func TestSnapshotImmutable(t *testing.T) {
	t.Parallel()
	c0, c1 := certs()[0], certs()[1]
	secret := [32]byte{1, 2, 3}
	ch := newChain(t)
	b := projections.NewBuilder(nil)
	apply := func(p events.Payload) {
		t.Helper()
		if err := b.Apply(ch.next(p, nil)); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	apply(trusted(c0, "a"))
	apply(&events.ConfigChanged{Key: "k", Value: "1"})
	apply(&events.TokenIssued{ID: "tok-1", Name: "t", SecretHash: hex.EncodeToString(secret[:])})
	snap := b.Model()
	before := view(t, snap)

	// Change every map the snapshot holds, in place and by addition.
	apply(trusted(c1, "b"))
	apply(&events.CertificateUpdated{Fingerprint: c0.FP, Name: "renamed", Projects: []string{"p"}})
	apply(&events.ConfigChanged{Key: "k", Value: "2"})
	apply(&events.ConfigChanged{Key: "k2", Value: "x"})
	apply(&events.TokenRedeemed{ID: "tok-1", Fingerprint: c1.FP})
	apply(&events.TokenIssued{ID: "tok-2", SecretHash: hex.EncodeToString(make([]byte, 32))})
	mid := b.Model()
	apply(&events.CertificateRemoved{Fingerprint: c0.FP})
	apply(&events.ConfigChanged{Key: "k", Value: ""})

	if diff := cmp.Diff(before, view(t, snap)); diff != "" {
		t.Errorf("snapshot changed after later Apply calls (-before +after):\n%s", diff)
	}
	if got, ok := snap.Certificate(c0.Sum); !ok || got.Name != "a" {
		t.Errorf("snapshot lookup of c0 = %v, %v; want the entry named a", got, ok)
	}
	if _, ok := snap.Certificate(c1.Sum); ok {
		t.Error("snapshot sees a certificate trusted after it was taken")
	}
	if got := snap.ConfigValue("k"); got != "1" {
		t.Errorf("snapshot ConfigValue(k) = %q, want 1", got)
	}
	if tok, ok := snap.PendingToken(secret); !ok || !tok.Pending() {
		t.Errorf("snapshot PendingToken = %v, %v; want the pending token", tok, ok)
	}
	// The intermediate snapshot still has c0, renamed, and k=2.
	if got, ok := mid.Certificate(c0.Sum); !ok || got.Name != "renamed" {
		t.Errorf("intermediate snapshot lookup of c0 = %v, %v; want the renamed entry", got, ok)
	}
	if got := mid.ConfigValue("k"); got != "2" {
		t.Errorf("intermediate snapshot ConfigValue(k) = %q, want 2", got)
	}

	// Config returns a copy.
	cfg := snap.Config()
	cfg["k"] = "changed"
	cfg["new"] = "x"
	if got := snap.ConfigValue("k"); got != "1" {
		t.Errorf("writing to Config()'s map changed the model: k = %q", got)
	}

	// Apply never modifies the model it is given.
	next, err := projections.Apply(snap, ch.next(&events.CertificateRemoved{Fingerprint: c0.FP}, nil))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff(before, view(t, snap)); diff != "" {
		t.Errorf("Apply modified its input (-before +after):\n%s", diff)
	}
	if _, ok := next.Certificate(c0.Sum); ok {
		t.Error("Apply's result still has the removed certificate")
	}
}

func TestParseFingerprint(t *testing.T) {
	t.Parallel()
	c0 := certs()[0]
	tests := []struct {
		name   string
		in     string
		want   [32]byte
		wantOK bool
	}{
		{name: "ok/lowercase", in: c0.FP, want: c0.Sum, wantOK: true},
		{name: "ok/uppercase", in: strings.ToUpper(c0.FP), want: c0.Sum, wantOK: true},
		{name: "fail/short", in: c0.FP[:63]},
		{name: "fail/long", in: c0.FP + "0"},
		{name: "fail/prefix", in: c0.FP[:12]},
		{name: "fail/not hex", in: strings.Repeat("g", 64)},
		{name: "fail/empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := projections.ParseFingerprint(tt.in)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Errorf("ParseFingerprint(%q) = %x, %v; want %x, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCertificatesByPrefix(t *testing.T) {
	t.Parallel()
	ch := newChain(t)
	b := projections.NewBuilder(nil)
	for i, c := range certs() {
		if err := b.Apply(ch.next(trusted(c, string(rune('a'+i))), nil)); err != nil {
			t.Fatal(err)
		}
	}
	m := b.Model()
	all := m.CertificatesByPrefix("")
	if len(all) != 3 {
		t.Fatalf("CertificatesByPrefix(\"\") returned %d entries, want 3", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Fingerprint >= all[i].Fingerprint {
			t.Errorf("CertificatesByPrefix is not sorted by fingerprint: %s before %s", all[i-1].Fingerprint, all[i].Fingerprint)
		}
	}
	c0 := certs()[0]
	tests := []struct {
		name   string
		prefix string
		want   []string
	}{
		{name: "ok/full fingerprint", prefix: c0.FP, want: []string{c0.FP}},
		{name: "ok/uppercase prefix", prefix: strings.ToUpper(c0.FP[:16]), want: []string{c0.FP}},
		{name: "ok/unknown full fingerprint", prefix: strings.Repeat("0", 64), want: nil},
		{name: "ok/no match", prefix: "zz", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, c := range m.CertificatesByPrefix(tt.prefix) {
				got = append(got, c.Fingerprint)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CertificatesByPrefix(%q) (-want +got):\n%s", tt.prefix, diff)
			}
		})
	}
}
