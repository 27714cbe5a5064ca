package e2e_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/lambda/host"
	"github.com/trustlog/trustlog/local/daemon"
)

// lambdaBenchStack is trustlogd filled with n trusted certificates, on a
// JetStream server reachable over TCP, plus a client certificate it trusts.
func lambdaBenchStack(b *testing.B, n int) (string, lambdaReq) {
	b.Helper()
	ns := natstest.RunServer(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: b.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	fillTrustStore(b, d, n)
	pair, cert := p384Cert(b, "lambda-client", false)
	tb := newServer(b, d, nil)
	tb.trust(b, cert, "lambda-client")
	return ns.ClientURL(), lambdaReq{method: "GET", path: "/1.0/certificates/" + fingerprintOf(cert), cert: &pair}
}

// BenchmarkLambdaColdStart measures a cold start of a function's host over
// a stream of 10,000 trusted certificates: connect to NATS, build the read
// model (replaying the whole stream, or decoding the stored snapshot and
// replaying nothing after it), build the service, and answer a first
// authenticated request (HTTP API event, certificate from the gateway).
func BenchmarkLambdaColdStart(b *testing.B) {
	url, req := lambdaBenchStack(b, 10_000)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cold := func(b *testing.B) {
		for b.Loop() {
			h := host.NewLazy(host.Config{NATSURL: url, Gateway: host.GatewayHTTP, Functions: []string{"certificates"}, Logger: log})
			if got := invokeLambda(b, host.GatewayHTTP, h, req); got.Status != 200 {
				b.Fatalf("first request: %+v", got)
			}
			b.StopTimer()
			h.Close()
			b.StartTimer()
		}
	}
	b.Run("replay", cold)
	h, err := host.Start(context.Background(), host.Config{NATSURL: url, Gateway: host.GatewayHTTP, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	if saved, err := h.SaveSnapshot(context.Background(), 0); !saved || err != nil {
		b.Fatalf("save snapshot: %v %v", saved, err)
	}
	h.Close()
	b.Run("snapshot", cold)
}

// BenchmarkLambdaWarm measures one warm invocation: the adapter, the
// catch-up check (one stream-info request to NATS), gateway certificate
// extraction and authn, and the handler, with 10,000 trusted certificates.
func BenchmarkLambdaWarm(b *testing.B) {
	url, req := lambdaBenchStack(b, 10_000)
	h, err := host.Start(context.Background(), host.Config{NATSURL: url, Gateway: host.GatewayHTTP, Functions: []string{"certificates"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got := invokeLambda(b, host.GatewayHTTP, h, req); got.Status != 200 {
			b.Fatalf("invocation: %+v", got)
		}
	}
}
