package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/service"
	"github.com/trustlog/trustlog/projections"
)

// TestWriteWhileStreamUnreachable: once the NATS server under a running
// service is gone, a write answers 503 in the error envelope (not a bare
// 500 after the JetStream publish timeout), and reads keep working until
// the staleness bound. The service reaches NATS over TCP with unlimited
// reconnects, as trustlogd --nats and the Lambda host do.
func TestWriteWhileStreamUnreachable(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	nc, err := nats.Connect(srv.ClientURL(), nats.Name(t.Name()), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := natsstore.Open(ctx, nc, natsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := projections.NewProjector(st, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: start}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	svc, err := service.New(service.Config{
		Model: p, Log: st, Stream: st, Host: &host{addr: "127.0.0.1:8443"}, Source: "/trustlog/testhost",
		Now: clk.Now, SealingKey: key, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	// serve sends a request as the local admin (the unix socket) and
	// waits at most 30 s for the answer. The request's context has no
	// deadline, as an HTTP server's has not.
	serve := func(method, path string, body any) (reply, time.Duration) {
		t.Helper()
		raw, _ := json.Marshal(body)
		r := httptest.NewRequestWithContext(authn.WithLocalUser(context.Background(), localUser), method, path, bytes.NewReader(raw))
		w := httptest.NewRecorder()
		began := time.Now()
		served := make(chan struct{})
		go func() { defer close(served); svc.ServeHTTP(w, r) }()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s %s: no answer within 30 s", method, path)
		}
		took := time.Since(began)
		rep := reply{Code: w.Code, Header: w.Header(), Raw: w.Body.Bytes()}
		if err := json.Unmarshal(rep.Raw, &rep.Env); err != nil {
			t.Fatalf("%s %s: not an envelope: %v: %s", method, path, err, rep.Raw)
		}
		return rep, took
	}

	c := newCert(t, "p384", "before", start.Add(-time.Hour), start.Add(24*time.Hour))
	if rep, _ := serve("POST", "/1.0/certificates", api.CertificatesPost{Name: "before", Type: "client", Certificate: c.B64()}); rep.Code != 201 {
		t.Fatalf("write with the stream up: %s", rep)
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	for i := 0; nc.Status() == nats.CONNECTED; i++ { // bounded: 10 s
		if i == 1000 {
			t.Fatal("the client still reports CONNECTED 10 s after the server shut down")
		}
		time.Sleep(10 * time.Millisecond)
	}

	const msg = "Service unavailable: the event stream is unreachable"
	other := newCert(t, "p384", "after", start.Add(-time.Hour), start.Add(24*time.Hour))
	writes := []struct {
		name, method, path string
		body               any
	}{
		{"POST /1.0/certificates", "POST", "/1.0/certificates", api.CertificatesPost{Name: "after", Type: "client", Certificate: other.B64()}},
		{"PUT /1.0", "PUT", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": "2d"}}},
		{"PATCH /1.0", "PATCH", "/1.0", api.ServerPut{Config: map[string]string{"core.remote_token_expiry": "3d"}}},
		{"DELETE /1.0/certificates/{fingerprint}", "DELETE", "/1.0/certificates/" + c.FP, nil},
	}
	for _, w := range writes {
		rep, took := serve(w.method, w.path, w.body)
		wantError(t, rep, 503, msg)
		t.Logf("%s with the stream down: %d in %v", w.name, rep.Code, took.Round(time.Millisecond))
	}
	// Reads are served from the read model until the staleness bound.
	if rep, _ := serve("GET", "/1.0/certificates/"+c.FP, nil); rep.Code != 200 {
		t.Errorf("read with the stream down: %s", rep)
	}
}
