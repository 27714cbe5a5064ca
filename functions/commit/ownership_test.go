package commit_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// TestOwnershipRace: two instances give one certificate to two principals
// at once, with decisions that check nothing themselves. The second write
// conflicts on the stream, decides again on the model that holds the
// first, and is refused with a 409: the certificate has one holder.
func TestOwnershipRace(t *testing.T) {
	t.Parallel()
	fp := strings.Repeat("ab", 32)
	cl := newCluster(t)
	b := cl.instance("b", nil)
	a := cl.instance("a", func(st *natsstore.Store) commit.Log {
		return &interleave{log: st, n: 1, other: func() error {
			// b activates a TLS identity with the certificate between a's
			// decision and a's append.
			_, err := b.do(ctxT(t), func(*projections.Model) ([]events.Payload, error) {
				return []events.Payload{
					events.IdentityCreated{ID: "tls-1", AuthMethod: events.IdentityTLS, Name: "runner"},
					events.IdentityActivated{ID: "tls-1", Name: "runner", Fingerprint: fp},
				}, nil
			})
			return err
		}}
	})
	decisions := 0
	_, err := a.do(ctxT(t), func(*projections.Model) ([]events.Payload, error) {
		decisions++
		return []events.Payload{events.CertificateTrusted{Fingerprint: fp, Name: "entry", Type: events.CertificateTypeClient}}, nil
	})
	var e *response.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Message != "Certificate already used by a TLS identity" {
		t.Fatalf("Do = %v, want a 409 naming the TLS identity", err)
	}
	if decisions != 2 {
		t.Errorf("a decided %d times, want 2 (once more after the conflict)", decisions)
	}
	var types []string
	for _, env := range a.envelopes(t, 1) {
		types = append(types, env.Type)
	}
	if strings.Join(types, " ") != "trustlog.identity.created.v1 trustlog.identity.activated.v1" {
		t.Errorf("stream holds %v, want only b's identity", types)
	}
	sum, _ := projections.ParseFingerprint(fp)
	if h, _ := b.proj.Snapshot().CertificateHolder(sum); h.Kind != projections.HeldByIdentity || h.ID != "tls-1" {
		t.Errorf("holder %+v, want the identity tls-1", h)
	}
}

// TestOwnershipRefusedDecision: a single write that gives a held
// certificate is refused before anything is appended.
func TestOwnershipRefusedDecision(t *testing.T) {
	t.Parallel()
	fp := strings.Repeat("cd", 32)
	in := newCluster(t).instance("a", nil)
	trust := func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{events.CertificateTrusted{Fingerprint: fp, Name: "entry", Type: events.CertificateTypeClient}}, nil
	}
	if _, err := in.do(ctxT(t), trust); err != nil {
		t.Fatal(err)
	}
	before := in.lastSeq(t)
	_, err := in.do(ctxT(t), func(*projections.Model) ([]events.Payload, error) {
		return []events.Payload{
			events.TokenRedeemed{ID: "tok"},
			events.IdentityActivated{ID: "tls-1", Fingerprint: fp},
		}, nil
	})
	var e *response.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Message != "Certificate already in trust store" {
		t.Fatalf("Do = %v, want a 409 naming the trust store", err)
	}
	if got := in.lastSeq(t); got != before {
		t.Errorf("stream moved from %d to %d", before, got)
	}
}
