package authn

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"sync/atomic"

	"github.com/trustlog/trustlog/projections"
)

type connKey struct{}

// connMemo remembers the fingerprint of the certificate a connection's
// peer presented: the requests of a keep-alive connection need not hash it
// again. HTTP/2 serves a connection's requests concurrently, hence the
// atomic pointer.
//
// It also remembers the identity Identify gave the peer under the last
// read model it saw.
type connMemo struct {
	last  atomic.Pointer[leafPrint]
	ident atomic.Pointer[memoIdentity]

	// vouch, if set, is called once, when a request on the connection
	// first authenticates (WithConnVouch).
	vouch   func()
	vouched atomic.Bool
}

// authenticated tells the connection's host, once, that a request on it
// authenticated.
func (m *connMemo) authenticated() {
	if m.vouch != nil && !m.vouched.Load() && m.vouched.CompareAndSwap(false, true) {
		m.vouch()
	}
}

// memoIdentity is the identity a trusted peer certificate was given under
// one read model, for requests from one remote address.
type memoIdentity struct {
	model  *projections.Model
	leaf   *x509.Certificate
	remote string
	id     Identity
}

// A memo is visible (connMemoOf) only where neither a local user nor a
// front end's peer certificates are set: WithConnMemo adds none over them,
// and WithLocalUser and WithPeerCertificates hide one set before them. A
// request that finds a memo is therefore authenticated by its own TLS
// connection's peer certificates, and Identify's keep-alive path need not
// look for the other two (each look walks the whole context chain, one
// cache miss per link on a loaded server).
func connMemoOf(ctx context.Context) *connMemo {
	memo, _ := ctx.Value(connKey{}).(*connMemo)
	return memo
}

type leafPrint struct {
	leaf *x509.Certificate
	sum  [32]byte
	hex  string
}

// WithConnMemo returns ctx with room to remember the peer certificate's
// fingerprint across the requests of one connection. Use it as (or in)
// http.Server.ConnContext of a TLS listener.
func WithConnMemo(ctx context.Context) context.Context {
	if ctx.Value(localUserKey) != nil || ctx.Value(peerKey) != nil {
		return ctx // see connMemoOf
	}
	return context.WithValue(ctx, connKey{}, &connMemo{})
}

// WithConnVouch is WithConnMemo, and vouch is called once, the first time
// a request on the connection authenticates as a trusted identity (a
// listener that bounds unauthenticated connections takes it out of their
// pool). vouch must not block.
func WithConnVouch(ctx context.Context, vouch func()) context.Context {
	if ctx.Value(localUserKey) != nil || ctx.Value(peerKey) != nil {
		return ctx // see connMemoOf
	}
	return context.WithValue(ctx, connKey{}, &connMemo{vouch: vouch})
}

// hideConnMemo returns ctx in which no connection memo is visible.
func hideConnMemo(ctx context.Context) context.Context {
	if connMemoOf(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, connKey{}, (*connMemo)(nil))
}

// fingerprintOf returns the SHA-256 of leaf and its hex form, remembered
// for the connection of ctx when it has a memo. The memo is keyed by the
// certificate object, which a TLS connection keeps for its lifetime.
func fingerprintOf(ctx context.Context, leaf *x509.Certificate) ([32]byte, string) {
	memo := connMemoOf(ctx)
	if memo != nil {
		if p := memo.last.Load(); p != nil && p.leaf == leaf {
			return p.sum, p.hex
		}
	}
	sum := projections.Fingerprint(leaf.Raw)
	p := &leafPrint{leaf: leaf, sum: sum, hex: hex.EncodeToString(sum[:])}
	if memo != nil {
		memo.last.Store(p)
	}
	return p.sum, p.hex
}
