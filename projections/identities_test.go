package projections_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/projections"
)

// identityView is what a test compares of an identity.
type identityView struct {
	Method, Name, Access string
	Projects             []string
	Pending              bool
	Fingerprint          string
}

func identitiesOf(t *testing.T, m *projections.Model) map[string]identityView {
	t.Helper()
	out := map[string]identityView{}
	for _, i := range m.Identities() {
		out[i.ID] = identityView{i.AuthMethod, i.Name, i.Access, i.Projects, i.Pending, i.Fingerprint}
		if got, ok := m.Identity(i.ID); !ok || got != i {
			t.Errorf("Identity(%s) = %v, %v; want the listed identity", i.ID, got, ok)
		}
	}
	return out
}

func TestIdentityFold(t *testing.T) {
	t.Parallel()
	alice := projections.OIDCIdentityID("https://idp/", "alice")
	cert := newCert(t, "runner")
	sum, _ := projections.ParseFingerprint(cert.FP)
	created := &events.IdentityCreated{ID: alice, AuthMethod: events.IdentityOIDC, Name: "alice@example.com", Issuer: "https://idp/", Subject: "alice"}
	pending := &events.IdentityCreated{ID: "tls-1", AuthMethod: events.IdentityTLS, Name: "runner", Access: events.AccessAdmin}
	tok := tokenIssued("tok-1", "s1")
	tok.IdentityID = "tls-1"
	tests := []struct {
		name    string
		events  []events.Payload
		want    map[string]identityView
		certFor string // identity expected for cert's fingerprint, "" for none
	}{
		{
			name:   "ok/oidc identity starts without a grant",
			events: []events.Payload{created},
			want:   map[string]identityView{alice: {"oidc", "alice@example.com", "", []string{}, false, ""}},
		},
		{
			name:   "ok/created twice keeps the first",
			events: []events.Payload{created, &events.IdentityCreated{ID: alice, AuthMethod: events.IdentityOIDC, Name: "other"}},
			want:   map[string]identityView{alice: {"oidc", "alice@example.com", "", []string{}, false, ""}},
		},
		{
			name: "ok/grant replaces the earlier one",
			events: []events.Payload{created,
				&events.IdentityGranted{ID: alice, Access: events.AccessAdmin},
				&events.IdentityGranted{ID: alice, Access: events.AccessRestricted, Projects: []string{"web"}}},
			want: map[string]identityView{alice: {"oidc", "alice@example.com", "restricted", []string{"web"}, false, ""}},
		},
		{
			name:   "ok/grant of an unknown identity is ignored",
			events: []events.Payload{&events.IdentityGranted{ID: "nobody", Access: events.AccessAdmin}},
			want:   map[string]identityView{},
		},
		{
			name:   "ok/removed",
			events: []events.Payload{created, &events.IdentityRemoved{ID: alice}},
			want:   map[string]identityView{},
		},
		{
			name:   "ok/tls identity pending until activated",
			events: []events.Payload{pending, tok},
			want:   map[string]identityView{"tls-1": {"tls", "runner", "admin", []string{}, true, ""}},
		},
		{
			name: "ok/tls identity activated by its certificate",
			events: []events.Payload{pending, tok, &events.TokenRedeemed{ID: "tok-1", Fingerprint: cert.FP},
				&events.IdentityActivated{ID: "tls-1", Fingerprint: cert.FP, Certificate: cert.PEM}},
			want:    map[string]identityView{"tls-1": {"tls", "runner", "admin", []string{}, false, cert.FP}},
			certFor: "tls-1",
		},
		{
			name:   "ok/pending identity dies with its expired token",
			events: []events.Payload{pending, tok, &events.TokenExpired{ID: "tok-1"}},
			want:   map[string]identityView{},
		},
		{
			name:   "ok/pending identity dies with its revoked token",
			events: []events.Payload{pending, tok, &events.TokenRevoked{ID: "tok-1"}},
			want:   map[string]identityView{},
		},
		{
			name: "ok/removing an active identity drops its certificate",
			events: []events.Payload{pending, tok, &events.TokenRedeemed{ID: "tok-1", Fingerprint: cert.FP},
				&events.IdentityActivated{ID: "tls-1", Fingerprint: cert.FP, Certificate: cert.PEM},
				&events.IdentityRemoved{ID: "tls-1"}},
			want: map[string]identityView{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newChain(t)
			b := projections.NewBuilder(nil)
			var snaps []*projections.Model
			for _, p := range tt.events {
				if err := b.Apply(c.next(p, nil)); err != nil {
					t.Fatal(err)
				}
				snaps = append(snaps, b.Model())
			}
			m := b.Model()
			if diff := cmp.Diff(tt.want, identitiesOf(t, m)); diff != "" {
				t.Errorf("identities (-want +got):\n%s", diff)
			}
			got, ok := m.IdentityByCertificate(sum)
			switch {
			case tt.certFor == "" && ok:
				t.Errorf("IdentityByCertificate = %s, want none", got.ID)
			case tt.certFor != "" && (!ok || got.ID != tt.certFor):
				t.Errorf("IdentityByCertificate = %v, %v; want %s", got, ok, tt.certFor)
			case tt.certFor != "" && got.X509() == nil:
				t.Error("active identity's certificate does not parse")
			}
			// Earlier snapshots never change under later events.
			if _, ok := tt.events[0].(*events.IdentityCreated); ok && snaps[0].NumIdentities() != 1 {
				t.Errorf("first snapshot holds %d identities, want 1", snaps[0].NumIdentities())
			}
		})
	}
}
