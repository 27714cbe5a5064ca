package oidc_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/oidc"
	"github.com/trustlog/trustlog/projections"
)

// modelWith folds config values into a model.
func modelWith(t *testing.T, cfg map[string]string) *projections.Model {
	t.Helper()
	b := projections.NewBuilder(nil)
	seq := uint64(0)
	for k, v := range cfg {
		seq++
		env, err := events.New("id", "urn:test", time.Unix(0, 0), events.Actor{}, events.ConfigChanged{Key: k, Value: v})
		if err != nil {
			t.Fatal(err)
		}
		env.PrevHash = b.Hash()
		raw, _ := env.Marshal()
		if err := b.Apply(events.Record{Seq: seq, Raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Model()
}

func TestSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		cfg         map[string]string
		wantEnabled bool
		wantScopes  []string
		wantAccess  string
	}{
		{name: "ok/unset", cfg: nil, wantScopes: []string{"openid", "offline_access"}, wantAccess: "none"},
		{name: "ok/issuer alone is not enabled", cfg: map[string]string{"oidc.issuer": "https://idp/"}, wantScopes: []string{"openid", "offline_access"}, wantAccess: "none"},
		{
			name:        "ok/enabled, scopes with commas and spaces",
			cfg:         map[string]string{"oidc.issuer": "https://idp/", "oidc.client.id": "c", "oidc.scopes": "openid, email profile", "oidc.default_access": "admin"},
			wantEnabled: true, wantScopes: []string{"openid", "email", "profile"}, wantAccess: "admin",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := modelWith(t, tt.cfg)
			s := oidc.SettingsOf(m)
			if s.Enabled() != tt.wantEnabled || oidc.New(nil, nil).Enabled(m) != tt.wantEnabled {
				t.Errorf("Enabled = %v, want %v", s.Enabled(), tt.wantEnabled)
			}
			if diff := cmp.Diff(tt.wantScopes, s.Scopes); diff != "" {
				t.Errorf("Scopes (-want +got):\n%s", diff)
			}
			if s.DefaultAccess != tt.wantAccess {
				t.Errorf("DefaultAccess = %q, want %q", s.DefaultAccess, tt.wantAccess)
			}
		})
	}
}

func TestChallengeHeaders(t *testing.T) {
	t.Parallel()
	s := oidc.SettingsOf(modelWith(t, map[string]string{
		"oidc.issuer": "https://idp/", "oidc.client.id": "web", "oidc.device.client.id": "cli",
		"oidc.audience": "https://api", "oidc.groups.claim": "groups", "oidc.scopes": "openid,email",
	}))
	h := http.Header{}
	s.Challenge(h)
	want := http.Header{
		"X-Incus-Oidc-Issuer": {"https://idp/"}, "X-Incus-Oidc-Clientid": {"web"}, "X-Incus-Oidc-Audience": {"https://api"},
		"X-Incus-Oidc-Scopes": {"openid,email"},
		"X-Lxd-Oidc-Issuer":   {"https://idp/"}, "X-Lxd-Oidc-Clientid": {"cli"}, "X-Lxd-Oidc-Audience": {"https://api"},
		"X-Lxd-Oidc-Groups-Claim": {"groups"}, "X-Lxd-Oidc-Scopes": {`["openid","email"]`},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

// TestUnreachableIssuer checks that a provider that does not answer
// refuses tokens, is not offered in auth_methods, and is not asked again
// before its backoff ends.
func TestUnreachableIssuer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	hits := make(chan struct{}, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- struct{}{}
		http.Error(w, "down", http.StatusServiceUnavailable)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	now := time.Unix(1_800_000_000, 0)
	v := oidc.New(nil, func() time.Time { return now })
	m := modelWith(t, map[string]string{"oidc.issuer": "http://" + addr + "/", "oidc.client.id": "c"})
	ctx := context.Background()
	if v.Ready(ctx, m) {
		t.Fatal("Ready with a provider that answers 503")
	}
	if _, err := v.Verify(ctx, m, "a.b.c"); err == nil {
		t.Fatal("Verify accepted a token without a provider")
	}
	if err := v.Discover(ctx, "http://"+addr+"/"); err == nil {
		t.Fatal("Discover accepted a provider that answers 503")
	}
	// Ready, Verify (backoff) and Discover (always asks): two requests.
	if n := len(hits); n != 2 {
		t.Errorf("provider asked %d times, want 2 (one discovery, then backoff; one explicit Discover)", n)
	}
	if _, err := v.Verify(ctx, m, ""); err == nil {
		t.Error("Verify accepted an empty token")
	}
}
