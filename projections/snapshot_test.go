package projections_test

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// snapView is everything a reader can observe of a model.
type snapView struct {
	Seq                 uint64
	Hash                string
	Broken, Skipped     uint64
	Certs               []projections.Certificate
	Config              map[string]string
	Tokens              []projections.Token
	Pending             []string
	CA                  string
	CRL, CRLPending     []string
	CRLNumber           string
	Identities          []projections.Identity
	CertOfIdentity      string
	RevokedSerial       bool
	TokenBySecretExists bool
}

func viewOf(m *projections.Model, identityCert [32]byte, secret [32]byte) snapView {
	v := snapView{Seq: m.Seq(), Hash: m.Hash(), Broken: m.ChainBreak(), Skipped: m.Skipped(), Config: m.Config()}
	for _, c := range m.Certificates() {
		v.Certs = append(v.Certs, *c)
	}
	for _, t := range m.Tokens() {
		v.Tokens = append(v.Tokens, *t)
	}
	for _, t := range m.PendingTokens() {
		v.Pending = append(v.Pending, t.ID)
	}
	if ca := m.CA(); ca != nil {
		v.CA = ca.Fingerprint + ca.PEM
	}
	if c := m.CRL(); c != nil {
		v.CRL, v.CRLNumber = c.Serials(), c.Number
		slices.Sort(v.CRL)
	}
	for _, i := range m.Identities() {
		v.Identities = append(v.Identities, *i)
	}
	if i, ok := m.IdentityByCertificate(identityCert); ok {
		v.CertOfIdentity = i.ID
	}
	v.RevokedSerial = m.Revoked(big.NewInt(0x2a))
	_, v.TokenBySecretExists = m.PendingToken(secret)
	return v
}

// TestSnapshotRoundTrip folds a stream with every kind of state, then
// checks that a model decoded from its snapshot reads the same and, fed
// the rest of the stream, ends where the full fold ends.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	ca, alice, runner := newCert(t, "ca"), newCert(t, "alice"), newCert(t, "runner")
	runnerSum, _ := projections.ParseFingerprint(runner.FP)
	_, secret := tokenSecret("s-pending")
	idTok := tokenIssued("tok-id", "s-id")
	idTok.IdentityID = "tls-1"
	head := []events.Payload{
		trusted(alice, "alice"),
		&events.ConfigChanged{Key: "core.https_address", Value: "127.0.0.1:8443"},
		tokenIssued("tok-redeemed", "s-redeemed"),
		&events.TokenRedeemed{ID: "tok-redeemed", Fingerprint: alice.FP},
		tokenIssued("tok-pending", "s-pending"),
		&events.CAChanged{Certificate: ca.PEM, Fingerprint: ca.FP},
		&events.CRLUpdated{IssuerFingerprint: ca.FP, Number: "3", ThisUpdate: baseTime, NextUpdate: baseTime.Add(time.Hour), SHA256: "h1", Total: 2, Parts: 1, Revoked: []string{"2a", "ff"}},
		&events.CRLUpdated{IssuerFingerprint: ca.FP, Number: "4", SHA256: "h2", Total: 2, Parts: 2, Revoked: []string{"2a"}},
		&events.IdentityCreated{ID: "oidc-1", AuthMethod: events.IdentityOIDC, Name: "alice@example.com", Issuer: "https://idp/", Subject: "alice"},
		&events.IdentityGranted{ID: "oidc-1", Access: events.AccessRestricted, Projects: []string{"web"}},
		&events.IdentityCreated{ID: "tls-1", AuthMethod: events.IdentityTLS, Name: "runner"},
		idTok,
		&events.TokenRedeemed{ID: "tok-id", Fingerprint: runner.FP},
		&events.IdentityActivated{ID: "tls-1", Fingerprint: runner.FP, Certificate: runner.PEM},
		&events.ACMEChallengePresented{Domain: "d", Token: "tok", KeyAuth: "tok.thumb"},
		&events.ServerCertificateRotated{Fingerprint: ca.FP, Chain: ca.PEM, Domains: []string{"d"}, NotAfter: baseTime, Source: "acme"},
	}
	tail := []events.Payload{
		&events.CRLRevocations{IssuerFingerprint: ca.FP, SHA256: "h2", Part: 2, Revoked: []string{"ff"}},
		&events.TokenRedeemed{ID: "tok-pending", Fingerprint: alice.FP},
		&events.IdentityRemoved{ID: "oidc-1"},
		&events.CertificateRemoved{Fingerprint: alice.FP},
	}
	c := newChain(t)
	full := projections.NewBuilder(nil)
	for _, p := range head {
		if err := full.Apply(c.next(p, nil)); err != nil {
			t.Fatal(err)
		}
	}
	atHead := full.Model()
	raw, err := projections.EncodeSnapshot(atHead)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := projections.DecodeSnapshot(raw)
	if err != nil {
		t.Fatal(err)
	}
	opts := cmp.Options{cmpopts.IgnoreUnexported(projections.Certificate{}, projections.Identity{}), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(viewOf(atHead, runnerSum, secret), viewOf(restored, runnerSum, secret), opts); diff != "" {
		t.Fatalf("restored model differs (-full +restored):\n%s", diff)
	}
	if k, ok := restored.ACMEKeyAuth("tok"); !ok || k != "tok.thumb" || restored.ServerCertificate() == nil || restored.ServerCertificate().Fingerprint != ca.FP {
		t.Error("the restored model lost the ACME challenge or the server certificate")
	}
	if projections.Digest(restored) != projections.Digest(atHead) {
		t.Error("the restored model's digest differs")
	}
	if i, _ := restored.IdentityByCertificate(runnerSum); i == nil || i.X509() == nil {
		t.Error("restored identity certificate does not parse")
	}
	if ca := restored.CA(); ca == nil || ca.Cert == nil {
		t.Error("restored CA does not parse")
	}
	resumed := projections.NewBuilder(restored)
	for _, p := range tail {
		rec := c.next(p, nil)
		if err := full.Apply(rec); err != nil {
			t.Fatal(err)
		}
		if err := resumed.Apply(rec); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(viewOf(full.Model(), runnerSum, secret), viewOf(resumed.Model(), runnerSum, secret), opts); diff != "" {
		t.Errorf("resumed fold differs from the full fold (-full +resumed):\n%s", diff)
	}
	if projections.Digest(full.Model()) != projections.Digest(resumed.Model()) {
		t.Error("the resumed model's digest differs from the full fold's")
	}
	if projections.Digest(full.Model()) == projections.Digest(atHead) {
		t.Error("the digest did not change with the tail")
	}
	if _, err := projections.DecodeSnapshot([]byte("not a snapshot")); err == nil {
		t.Error("garbage decoded as a snapshot")
	}
}

// TestSnapshotManyCertificates: a trust store larger than one snapshot
// chunk (filled on every processor at decode) comes back whole.
func TestSnapshotManyCertificates(t *testing.T) {
	t.Parallel()
	const n = 10_000
	recs, sums := trustedRecords(t, n, "")
	m := fold(t, recs)
	raw, err := projections.EncodeSnapshot(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := projections.DecodeSnapshot(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.NumCertificates() != n || projections.Digest(got) != projections.Digest(m) {
		t.Fatalf("decoded %d certificates, digest equal: %v", got.NumCertificates(), projections.Digest(got) == projections.Digest(m))
	}
	for i, sum := range sums {
		if c, ok := got.Certificate(sum); !ok || c.Name != fmt.Sprintf("client-%d", i) {
			t.Fatalf("certificate %d: %v, %v", i, c, ok)
		}
	}
}

// TestSnapshotDamaged: a snapshot cut short anywhere, or one written in
// another format, is refused with an error (the caller then replays the
// stream), never a panic or a partial model.
func TestSnapshotDamaged(t *testing.T) {
	t.Parallel()
	recs, _ := trustedRecords(t, 5000, newCert(t, "damaged").PEM)
	raw, err := projections.EncodeSnapshot(fold(t, recs))
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(raw); cut += 1 + len(raw)/500 {
		if m, err := projections.DecodeSnapshot(raw[:cut]); err == nil {
			t.Fatalf("a snapshot cut at %d of %d bytes decoded (%d certificates)", cut, len(raw), m.NumCertificates())
		}
	}
	if _, err := projections.DecodeSnapshot(append(slices.Clip(raw), 0)); err == nil {
		t.Error("a snapshot with a trailing byte decoded")
	}
	// Format 2 was a bare gob stream.
	if _, err := projections.DecodeSnapshot([]byte{0x3f, 0xff, 0x81, 0x03, 0x01}); !errors.Is(err, projections.ErrSnapshotVersion) {
		t.Errorf("an older snapshot: %v, want ErrSnapshotVersion", err)
	}
}

// TestSnapshotOfBrokenChainRefused: a model whose chain is broken is not
// stored as a snapshot, so a cold start replays and finds the break
// itself instead of trusting or forgetting it.
func TestSnapshotOfBrokenChainRefused(t *testing.T) {
	t.Parallel()
	recs := configChain(t, 3) // chain_test.go
	recs[1].Raw, recs[2].Raw = recs[2].Raw, recs[1].Raw
	b := projections.NewBuilder(nil)
	b.ApplyAll(recs, nil)
	if _, err := projections.EncodeSnapshot(b.Model()); !errors.Is(err, projections.ErrSnapshotBroken) {
		t.Errorf("EncodeSnapshot of a model broken at %d: %v, want ErrSnapshotBroken", b.Model().ChainBreak(), err)
	}
}
