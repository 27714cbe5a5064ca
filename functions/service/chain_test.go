package service_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
)

// handStream is a TRUSTLOG stream written by hand, as anyone holding the
// NATS credentials could: envelopes made here and published to the
// stream's subjects directly, behind Trustlog's back. The stream is
// created without DenyDelete so that a test can drop a record before
// natsstore.Open gives it its production flags (which cannot be taken
// back).
type handStream struct {
	t    *testing.T
	js   jetstream.JetStream
	prev string // hash of the last record made
	n    int    // records made
}

func newHandStream(t *testing.T) (*handStream, func() *natsstore.Store) {
	t.Helper()
	srv := natstest.RunServer(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: natsstore.DefaultStream, Subjects: []string{events.SubjectPrefix + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, AllowAtomicPublish: true, AllowDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	open := func() *natsstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		st, err := natsstore.Open(ctx, nc, natsstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	return &handStream{t: t, js: js}, open
}

// make returns the stored bytes of p as the next event of the chain.
func (h *handStream) make(p events.Payload) []byte {
	h.t.Helper()
	h.n++
	env, err := events.New(fmt.Sprintf("hand-%d", h.n), "urn:hand", start, events.Actor{Name: "hand", Method: "system"}, p)
	if err != nil {
		h.t.Fatal(err)
	}
	env.PrevHash = h.prev
	raw, err := env.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	h.prev = events.Hash(raw)
	return raw
}

// publish stores raw on the stream and returns its sequence.
func (h *handStream) publish(raw []byte) uint64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	env, err := events.Decode(raw)
	if err != nil {
		h.t.Fatal(err)
	}
	ack, err := h.js.Publish(ctx, env.Subject, raw)
	if err != nil {
		h.t.Fatal(err)
	}
	return ack.Sequence
}

// setting is the payload of the i-th event of the streams below.
func setting(i int) events.Payload {
	return &events.ConfigChanged{Key: fmt.Sprintf("user.k%d", i), Value: "v"}
}

// chainFeed is a store that delivers, once, the record at seq a second
// time with other content, right after it. JetStream never repeats a
// sequence, so this is how the service meets "a duplicate sequence with
// different content": through the feed its projector and audit read.
type chainFeed struct {
	*natsstore.Store
	seq uint64
	raw []byte
}

func (f chainFeed) Follow(ctx context.Context, from uint64, idle time.Duration, fn func(events.Record, uint64), contact func(time.Time)) error {
	return f.Store.Follow(ctx, from, idle, func(rec events.Record, pending uint64) {
		fn(rec, pending)
		if rec.Seq == f.seq {
			fn(events.Record{Seq: f.seq, Raw: f.raw}, pending)
		}
	}, contact)
}

// TestChainBreakRefusesHTTPS: each way of breaking the log (a record
// forged behind Trustlog's back while the service runs, two records
// stored in the wrong order, one dropped, one delivered twice with
// different content) is found by the projector and by
// GET /1.0/trustlog/audit/verify at the same first sequence, for the same
// reason. From then on every HTTPS request, trusted or not, is refused
// with 503 naming it; the unix socket still serves, and so does
// GET /1.0/metrics, whose gauge names the sequence.
func TestChainBreakRefusesHTTPS(t *testing.T) {
	t.Parallel()
	alice := newCert(t, "p384", "alice", start.Add(-time.Hour), start.Add(24*time.Hour))
	trustAlice := &events.CertificateTrusted{Fingerprint: alice.FP, Name: "alice", Type: events.CertificateTypeClient,
		Projects: []string{}, Certificate: alice.PEM()}
	const n = 6 // events in each stream: alice trusted, then settings

	tests := []struct {
		name string
		// build writes the stream before the service starts and returns
		// the feed to read it through (nil: the store itself); after, if
		// set, breaks it while the service follows.
		build   func(h *handStream, open func() *natsstore.Store) (*natsstore.Store, stackFeed)
		after   func(h *handStream) uint64
		wantSeq uint64
		wantWhy string
	}{
		{
			name: "forged while following",
			build: func(h *handStream, open func() *natsstore.Store) (*natsstore.Store, stackFeed) {
				h.publish(h.make(trustAlice))
				for i := 2; i <= n; i++ {
					h.publish(h.make(setting(i)))
				}
				return open(), nil
			},
			after: func(h *handStream) uint64 {
				// A rewrite of event 5: made as the first four were, it
				// names event 4 as its predecessor, and lands at the end.
				rewrite := &handStream{t: h.t}
				rewrite.make(trustAlice)
				for i := 2; i <= 4; i++ {
					rewrite.make(setting(i))
				}
				return h.publish(rewrite.make(&events.ConfigChanged{Key: "user.k5", Value: "forged"}))
			},
			wantSeq: n + 1, wantWhy: fmt.Sprintf("its prevhash does not match the hash of event %d", n),
		},
		{
			name: "reordered",
			build: func(h *handStream, open func() *natsstore.Store) (*natsstore.Store, stackFeed) {
				h.publish(h.make(trustAlice))
				h.publish(h.make(setting(2)))
				h.publish(h.make(setting(3)))
				four, five := h.make(setting(4)), h.make(setting(5))
				h.publish(five)
				h.publish(four)
				h.publish(h.make(setting(6)))
				return open(), nil
			},
			wantSeq: 4, wantWhy: "its prevhash does not match the hash of event 3",
		},
		{
			name: "dropped",
			build: func(h *handStream, open func() *natsstore.Store) (*natsstore.Store, stackFeed) {
				h.publish(h.make(trustAlice))
				for i := 2; i <= n; i++ {
					h.publish(h.make(setting(i)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				str, err := h.js.Stream(ctx, natsstore.DefaultStream)
				if err != nil {
					h.t.Fatal(err)
				}
				if err := str.DeleteMsg(ctx, 4); err != nil {
					h.t.Fatal(err)
				}
				return open(), nil
			},
			wantSeq: 4, wantWhy: "sequence 4 is missing: the record after 3 is 5",
		},
		{
			name: "duplicated",
			build: func(h *handStream, open func() *natsstore.Store) (*natsstore.Store, stackFeed) {
				h.publish(h.make(trustAlice))
				for i := 2; i <= n; i++ {
					h.publish(h.make(setting(i)))
				}
				other := &handStream{t: h.t}
				other.make(trustAlice)
				for i := 2; i <= 3; i++ {
					other.make(setting(i))
				}
				st := open()
				return st, chainFeed{Store: st, seq: 4, raw: other.make(&events.ConfigChanged{Key: "user.k4", Value: "other"})}
			},
			wantSeq: 4, wantWhy: "sequence 4 was delivered again with different content",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, open := newHandStream(t)
			st, feed := tt.build(h, open)
			if feed == nil {
				feed = st
			}
			s := newStackOn(t, st, feed)
			anonymous, aliceClient := s.client(t, nil), s.client(t, alice)
			if tt.after != nil {
				// Intact so far: the service serves HTTPS.
				wantCode(t, s.call(t, anonymous, "GET", "/1.0", nil), http.StatusOK)
				wantCode(t, s.call(t, aliceClient, "GET", "/1.0/certificates", nil), http.StatusOK)
				seq := tt.after(h)
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				if err := s.proj.WaitFor(ctx, seq); err != nil {
					t.Fatal(err)
				}
			}

			m := s.proj.Snapshot()
			if m.ChainBreak() != tt.wantSeq || m.ChainBreakReason() != tt.wantWhy {
				t.Errorf("projector: ChainBreak() = %d %q, want %d %q", m.ChainBreak(), m.ChainBreakReason(), tt.wantSeq, tt.wantWhy)
			}
			var v api.AuditVerification
			s.call(t, nil, "GET", "/1.0/trustlog/audit/verify", nil).metadata(t, &v)
			if v.OK || v.FirstBreak != tt.wantSeq || v.FirstBreakReason != tt.wantWhy {
				t.Errorf("audit verify: %+v, want the first break at %d: %q", v, tt.wantSeq, tt.wantWhy)
			}

			refusal := fmt.Sprintf("Service unavailable: the event log is broken at sequence %d: %s; this instance will not vouch for its trust store",
				tt.wantSeq, tt.wantWhy)
			for _, c := range []struct {
				name   string
				client *http.Client
				method string
				path   string
				body   any
			}{
				{"anonymous GET /1.0", anonymous, "GET", "/1.0", nil},
				{"trusted GET /1.0", aliceClient, "GET", "/1.0", nil},
				{"trusted GET /1.0/certificates", aliceClient, "GET", "/1.0/certificates", nil},
				{"trusted POST /1.0/certificates", aliceClient, "POST", "/1.0/certificates", api.CertificatesPost{Name: "x", Certificate: alice.B64()}},
				{"anonymous token redemption", anonymous, "POST", "/1.0/certificates", api.CertificatesPost{TrustToken: "x"}},
				{"ACME challenge", anonymous, "GET", "/.well-known/acme-challenge/abc", nil},
			} {
				wantError(t, s.call(t, c.client, c.method, c.path, c.body), http.StatusServiceUnavailable, refusal)
			}
			// The operator's way in still works.
			wantCode(t, s.call(t, nil, "GET", "/1.0/certificates", nil), http.StatusOK)
			// And monitoring reads where the log broke.
			code, body := get(t, aliceClient, "https://"+s.host.addr+"/1.0/metrics")
			if want := fmt.Sprintf("\ntrustlog_chain_break_sequence %d\n", tt.wantSeq); code != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("GET /1.0/metrics: %d, want 200 with %q", code, strings.TrimSpace(want))
			}
		})
	}
}

// get fetches url with c and returns the status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

// TestChainIntactServesHTTPS: on an intact log the gate's check lets every
// request through and the gauge is 0.
func TestChainIntactServesHTTPS(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	c := s.validCert(t, "bob")
	wantCode(t, s.call(t, nil, "POST", "/1.0/certificates", api.CertificatesPost{Name: "bob", Certificate: c.B64()}), http.StatusCreated)
	bob := s.client(t, c)
	wantCode(t, s.call(t, s.client(t, nil), "GET", "/1.0", nil), http.StatusOK)
	wantCode(t, s.call(t, bob, "GET", "/1.0/certificates", nil), http.StatusOK)
	if code, body := get(t, bob, "https://"+s.host.addr+"/1.0/metrics"); code != http.StatusOK || !strings.Contains(body, "\ntrustlog_chain_break_sequence 0\n") {
		t.Errorf("GET /1.0/metrics: %d %s", code, body)
	}
}
