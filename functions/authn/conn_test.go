package authn

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"testing"
)

// TestConnMemo: the fingerprint remembered for a connection is always the
// one of the certificate asked about, with or without a memo.
func TestConnMemo(t *testing.T) {
	a := &x509.Certificate{Raw: []byte("certificate a")}
	b := &x509.Certificate{Raw: []byte("certificate b")}
	want := func(c *x509.Certificate) string {
		sum := sha256.Sum256(c.Raw)
		return hex.EncodeToString(sum[:])
	}
	memo := WithConnMemo(context.Background())
	for i, tc := range []struct {
		ctx  context.Context
		leaf *x509.Certificate
	}{
		{memo, a}, {memo, a}, {memo, b}, {memo, a}, {context.Background(), b}, {memo, b},
	} {
		sum, fp := fingerprintOf(tc.ctx, tc.leaf)
		if fp != want(tc.leaf) || hex.EncodeToString(sum[:]) != fp {
			t.Errorf("call %d: fingerprint %s (%x), want %s", i, fp, sum, want(tc.leaf))
		}
	}
	if p := memo.Value(connKey{}).(*connMemo).last.Load(); p == nil || p.leaf != b {
		t.Errorf("the memo does not hold the last certificate")
	}
}

// TestConnMemoHidden: a memo is never visible together with a local user
// or a front end's certificates, whichever came first.
func TestConnMemoHidden(t *testing.T) {
	chain := []*x509.Certificate{{Raw: []byte("front end's")}}
	bg := context.Background()
	memo := WithConnMemo(bg)
	if connMemoOf(memo) == nil {
		t.Fatal("WithConnMemo added no memo")
	}
	for name, ctx := range map[string]context.Context{
		"local user over a memo":          WithLocalUser(memo, "root"),
		"front end's chain over a memo":   WithPeerCertificates(memo, chain),
		"a memo over a local user":        WithConnMemo(WithLocalUser(bg, "root")),
		"a memo over a front end's chain": WithConnMemo(WithPeerCertificates(bg, chain)),
	} {
		if connMemoOf(ctx) != nil {
			t.Errorf("%s: the memo is visible", name)
		}
	}
}
