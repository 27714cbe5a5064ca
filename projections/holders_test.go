package projections_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// TestTakenCertificate: a write may give a certificate only to one
// principal, counting the trust store, the active TLS identities and the
// write's own earlier events; events of either form (value or pointer)
// count.
func TestTakenCertificate(t *testing.T) {
	t.Parallel()
	cs := certs()
	entry, ident, free := cs[0], cs[1], cs[2]
	c := newChain(t)
	b := projections.NewBuilder(nil)
	for _, p := range []events.Payload{
		trusted(entry, "entry"),
		&events.IdentityCreated{ID: "tls-1", AuthMethod: events.IdentityTLS, Name: "runner"},
		&events.IdentityActivated{ID: "tls-1", Name: "runner", Fingerprint: ident.FP, Certificate: ident.PEM},
	} {
		if err := b.Apply(c.next(p, nil)); err != nil {
			t.Fatal(err)
		}
	}
	m := b.Model()
	byEntry := projections.Holder{Kind: projections.HeldByCertificate, ID: entry.FP, Name: "entry"}
	byIdent := projections.Holder{Kind: projections.HeldByIdentity, ID: "tls-1", Name: "runner"}

	for _, tc := range []struct {
		name string
		ps   []events.Payload
		want *projections.Holder // nil: not taken
	}{
		{name: "ok/trust a free certificate", ps: []events.Payload{events.CertificateTrusted{Fingerprint: free.FP}}},
		{name: "ok/no events"},
		{name: "ok/update without a new certificate",
			ps: []events.Payload{events.CertificateUpdated{Fingerprint: entry.FP, Name: "renamed"}}},
		{name: "ok/re-key to a free certificate",
			ps: []events.Payload{&events.CertificateUpdated{Fingerprint: entry.FP, NewFingerprint: free.FP}}},
		{name: "ok/activate with a free certificate",
			ps: []events.Payload{events.IdentityActivated{ID: "tls-2", Fingerprint: free.FP}}},
		{name: "ok/a removed entry's certificate is free again",
			ps: []events.Payload{events.CertificateRemoved{Fingerprint: entry.FP}, events.IdentityActivated{ID: "tls-2", Fingerprint: entry.FP}}},
		{name: "ok/a removed identity's certificate is free again",
			ps: []events.Payload{events.IdentityRemoved{ID: "tls-1"}, events.CertificateTrusted{Fingerprint: ident.FP}}},
		{name: "ok/a re-keyed entry's old certificate is free again",
			ps: []events.Payload{events.CertificateUpdated{Fingerprint: entry.FP, NewFingerprint: free.FP},
				events.IdentityActivated{ID: "tls-2", Fingerprint: entry.FP}}},
		{name: "ok/an invalid fingerprint gives nothing", ps: []events.Payload{events.CertificateTrusted{Fingerprint: "zz"}}},
		{name: "fail/trust an identity's certificate",
			ps: []events.Payload{events.CertificateTrusted{Fingerprint: ident.FP}}, want: &byIdent},
		{name: "fail/trust an entry's certificate again",
			ps: []events.Payload{&events.CertificateTrusted{Fingerprint: entry.FP}}, want: &byEntry},
		{name: "fail/re-key to an identity's certificate",
			ps: []events.Payload{events.CertificateUpdated{Fingerprint: entry.FP, NewFingerprint: ident.FP}}, want: &byIdent},
		{name: "fail/activate with an entry's certificate",
			ps: []events.Payload{events.TokenRedeemed{ID: "t"}, events.IdentityActivated{ID: "tls-2", Fingerprint: entry.FP}}, want: &byEntry},
		{name: "fail/activate with another identity's certificate",
			ps: []events.Payload{&events.IdentityActivated{ID: "tls-2", Fingerprint: ident.FP}}, want: &byIdent},
		{name: "fail/activate with an uppercase fingerprint of an entry",
			ps: []events.Payload{events.IdentityActivated{ID: "tls-2", Fingerprint: upper(entry.FP)}}, want: &byEntry},
		{name: "fail/one write gives a certificate twice",
			ps: []events.Payload{events.CertificateTrusted{Fingerprint: free.FP, Name: "one"},
				events.IdentityActivated{ID: "tls-2", Fingerprint: free.FP}},
			want: &projections.Holder{Kind: projections.HeldByCertificate, ID: free.FP, Name: "one"}},
		{name: "fail/a later event of the write is still checked",
			ps: []events.Payload{events.IdentityActivated{ID: "tls-2", Name: "new", Fingerprint: free.FP},
				events.IdentityRemoved{ID: "tls-2"}, events.IdentityActivated{ID: "tls-3", Fingerprint: ident.FP}},
			want: &byIdent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, taken := m.TakenCertificate(tc.ps)
			switch {
			case tc.want == nil && taken:
				t.Errorf("taken by %+v, want free", got)
			case tc.want != nil && !taken:
				t.Errorf("free, want taken by %+v", *tc.want)
			case tc.want != nil:
				if diff := cmp.Diff(*tc.want, got); diff != "" {
					t.Errorf("holder (-want +got):\n%s", diff)
				}
			}
		})
	}

	if h, ok := m.CertificateHolder(free.Sum); ok {
		t.Errorf("CertificateHolder(free) = %+v", h)
	}
	if h, _ := m.CertificateHolder(ident.Sum); h != byIdent {
		t.Errorf("CertificateHolder(identity's) = %+v, want %+v", h, byIdent)
	}
}

func upper(s string) string {
	out := []byte(s)
	for i, c := range out {
		if 'a' <= c && c <= 'f' {
			out[i] = c - 'a' + 'A'
		}
	}
	return string(out)
}
