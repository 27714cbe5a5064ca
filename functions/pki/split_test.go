package pki_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/projections"
)

// longSerials returns n serial numbers of octets bytes each (the top bit
// set, so each is 2*octets hex digits).
func longSerials(n, octets int) []*big.Int {
	base := new(big.Int).Lsh(big.NewInt(1), uint(8*octets-1))
	out := make([]*big.Int, n)
	for i := range out {
		out[i] = new(big.Int).Add(base, big.NewInt(int64(i)*7919))
	}
	return out
}

// crlOf signs a CRL numbered number revoking serials.
func (ca *testCA) crlOf(tb testing.TB, number int64, serials []*big.Int) []byte {
	tb.Helper()
	entries := make([]x509.RevocationListEntry, len(serials))
	for i, s := range serials {
		entries[i] = x509.RevocationListEntry{SerialNumber: s, RevocationTime: t0}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: t0, NextUpdate: t0.Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// TestPutCRLLongSerials: a CRL whose serials are long is split by the
// encoded size of its events, under the NATS server's max payload, not by
// count alone. Through the handler on a real JetStream (1 MiB max payload):
// 100,000 serials of 20 octets (the most RFC 5280 allows), and 60,000 of
// 32 octets, whose 20,000-serial parts (≈ 1.3 MiB each) the server would
// refuse, are both accepted, stored in messages below the limit, and in
// force with every serial.
func TestPutCRLLongSerials(t *testing.T) {
	t.Parallel()
	st, _ := natstest.OpenStore(t)
	proj := projections.NewProjector(st, projections.ProjectorConfig{})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = proj.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := proj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return t0 }
	c := &commit.Committer{Model: proj, Log: st, Now: now, NewID: uuid.NewString, Source: "/test"}
	if got := c.MaxPayload(); got != st.MaxPayload() || got != 1<<20 {
		t.Fatalf("Committer.MaxPayload = %d, store says %d; want the server's 1 MiB", got, st.MaxPayload())
	}
	e := &handlerEnv{proj: proj, h: gate.New(gate.Config{Authenticator: authn.New(proj, now)}, pki.New(proj, c, now, nil).Routes()...)}

	ca := newCA(t, "ca")
	caBody, _ := json.Marshal(pki.CAPut{Certificate: ca.pem})
	if code, msg := e.put(t, "/1.0/trustlog/pki/ca", caBody); code != 200 {
		t.Fatalf("PUT ca: %d %s", code, msg)
	}
	tests := []struct {
		name      string
		n, octets int
	}{
		{"ok/100k serials of 20 octets", 100_000, 20},
		{"ok/60k serials of 32 octets, parts of 20k too big", 60_000, 32},
	}
	for i, tt := range tests {
		serials := longSerials(tt.n, tt.octets)
		der := ca.crlOf(t, int64(i+1), serials)
		body, _ := json.Marshal(pki.CRLPut{CRL: base64.StdEncoding.EncodeToString(der)})
		before, err := st.LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if code, msg := e.put(t, "/1.0/trustlog/pki/crl", body); code != http.StatusOK {
			t.Fatalf("%s: PUT crl: %d %s", tt.name, code, msg)
		}
		last, err := st.LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := st.Read(ctx, before+1, last)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range recs {
			if int64(len(r.Raw)) >= st.MaxPayload()-2048 {
				t.Errorf("%s: part %d is %d bytes, too close to the %d max payload", tt.name, j+1, len(r.Raw), st.MaxPayload())
			}
		}
		m := proj.Snapshot()
		crl := m.CRL()
		if crl == nil || crl.Total != tt.n || len(crl.Serials()) != tt.n {
			t.Fatalf("%s: CRL in force: %v", tt.name, crl)
		}
		for _, sn := range serials {
			if !m.Revoked(sn) {
				t.Fatalf("%s: serial %x not revoked", tt.name, sn)
			}
		}
		t.Logf("%s: %d events, the largest part %d bytes", tt.name, len(recs), largest(recs))
	}
}

func largest(recs []events.Record) int {
	n := 0
	for _, r := range recs {
		n = max(n, len(r.Raw))
	}
	return n
}

// TestCRLEventsUnder: whatever the message limit, each event of a list,
// encoded in its envelope, stays below it, carries at most pki.PartSize
// serials, and folding the events puts the whole list in force.
func TestCRLEventsUnder(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	serials := longSerials(30_000, 20)
	der := ca.crlOf(t, 1, serials)
	caEv := ca.event(t)
	for _, limit := range []int64{128 << 10, 256 << 10, 1 << 20, 8 << 20} {
		t.Run(fmt.Sprintf("ok/max payload %d", limit), func(t *testing.T) {
			t.Parallel()
			evs, err := pki.CRLEventsUnder(fold(t, caEv), der, limit)
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range evs {
				env, err := events.New(uuid.NewString(), "/trustlog/a-host-name", t0,
					events.Actor{Name: "an-administrator", Method: "tls", Address: "2001:db8::1"}, ev)
				if err != nil {
					t.Fatal(err)
				}
				env.PrevHash = events.Hash([]byte("previous"))
				raw, _ := env.Marshal()
				if int64(len(raw))+1024 >= limit {
					t.Errorf("event %d is %d bytes: with 1 KiB of headers, not below %d", i+1, len(raw), limit)
				}
				n := 0
				switch e := ev.(type) {
				case events.CRLUpdated:
					n = len(e.Revoked)
					if e.Parts != len(evs) {
						t.Errorf("Parts = %d, want %d", e.Parts, len(evs))
					}
				case events.CRLRevocations:
					n = len(e.Revoked)
				}
				if n == 0 || n > pki.PartSize {
					t.Errorf("event %d carries %d serials", i+1, n)
				}
			}
			m := fold(t, append([]events.Payload{caEv}, evs...)...)
			if c := m.CRL(); c == nil || len(c.Serials()) != len(serials) {
				t.Fatalf("CRL in force: %v", c)
			}
			if !m.Revoked(serials[0]) || !m.Revoked(serials[len(serials)-1]) {
				t.Error("first or last serial not revoked")
			}
		})
	}
}

// The store reports its server's limit to the committer.
var _ commit.PayloadLimit = (*natsstore.Store)(nil)
