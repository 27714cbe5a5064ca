package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
)

// TestAppendUnavailable: an append that cannot reach the stream fails with
// an error wrapping events.ErrUnavailable, whether the server is gone (the
// connection reconnecting, or closed) or nothing answers for the stream;
// a single event and an atomic batch alike.
func TestAppendUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cut  func(t *testing.T, nc *nats.Conn, stop func())
	}{
		{"fail/server shut down, reconnecting", func(t *testing.T, nc *nats.Conn, stop func()) {
			stop()
			for i := 0; nc.Status() == nats.CONNECTED; i++ { // bounded: 10 s
				if i == 1000 {
					t.Fatal("still CONNECTED 10 s after the server shut down")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}},
		{"fail/connection closed", func(t *testing.T, nc *nats.Conn, stop func()) { nc.Close() }},
		{"fail/no stream answers", func(t *testing.T, nc *nats.Conn, stop func()) {
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if err := js.DeleteStream(testCtx(t), natsstore.DefaultStream); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		for _, n := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%d events", tt.name, n), func(t *testing.T) {
				t.Parallel()
				srv := natstest.RunServer(t)
				nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(nc.Close)
				st, err := natsstore.Open(testCtx(t), nc, natsstore.Config{})
				if err != nil {
					t.Fatal(err)
				}
				seq, err := st.Append(testCtx(t), 0, "", configEnv(t, "e1", "k", "v"))
				if err != nil {
					t.Fatalf("Append with the stream up: %v", err)
				}
				tt.cut(t, nc, func() { srv.Shutdown(); srv.WaitForShutdown() })
				envs := make([]events.Envelope, n)
				for i := range envs {
					envs[i] = configEnv(t, "e2-"+string(rune('a'+i)), "k", "w")
				}
				// The request context has no deadline (as an HTTP
				// server's); 30 s bounds the test only.
				type result struct {
					err  error
					took time.Duration
				}
				res := make(chan result, 1)
				go func() {
					began := time.Now()
					_, err := st.Append(context.Background(), seq, "h", envs...)
					res <- result{err, time.Since(began)}
				}()
				select {
				case r := <-res:
					if !errors.Is(r.err, events.ErrUnavailable) {
						t.Fatalf("Append of %d: %v, want events.ErrUnavailable", n, r.err)
					}
					t.Logf("Append of %d failed in %v: %v", n, r.took.Round(time.Millisecond), r.err)
				case <-time.After(30 * time.Second):
					t.Fatalf("Append of %d did not return within 30 s", n)
				}
			})
		}
	}
}
