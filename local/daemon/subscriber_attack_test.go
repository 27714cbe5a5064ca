package daemon_test

// The read-only NATS subscriber of --nats-listen, tried as an attacker:
// it must not reach the daemon's consumers, its own consumers are capped,
// and nothing it does stops the API or a restart.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/subscribe"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// saListen makes a daemon listen for NATS subscribers on a free port.
func saListen(c *daemon.Config) { c.NATSListen = "127.0.0.1:0" }

// saConnect connects to a NATS URL; the connection closes with the test.
func saConnect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// saSubscriber connects as the subscriber of td, with the URL it wrote.
func saSubscriber(t *testing.T, td *dmDaemon) *nats.Conn {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(td.dir, daemon.SubscriberURLFile))
	if err != nil {
		t.Fatal(err)
	}
	return saConnect(t, strings.TrimSpace(string(raw)))
}

// saOwner connects as the daemon's own NATS user (its password is in the
// data directory, readable by the daemon's user only), to see the
// consumers of the daemon's stream.
func saOwner(t *testing.T, td *dmDaemon) jetstream.JetStream {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(td.dir, "nats-admin.password"))
	if err != nil {
		t.Fatal(err)
	}
	nc := saConnect(t, "nats://trustlogd:"+strings.TrimSpace(string(pw))+"@"+td.d.NATSAddr())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// saConsumers lists the consumers of stream TRUSTLOG as js sees them.
func saConsumers(t *testing.T, js jetstream.JetStream) []*jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "TRUSTLOG")
	if err != nil {
		t.Fatalf("stream TRUSTLOG: %v", err)
	}
	var out []*jetstream.ConsumerInfo
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		out = append(out, ci)
	}
	if l.Err() != nil {
		t.Fatalf("list consumers: %v", l.Err())
	}
	return out
}

// saCollect follows the subscriber's stream with o until it has n events
// or 15 s pass.
func saCollect(t *testing.T, nc *nats.Conn, o subscribe.Options, n int) []subscribe.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []subscribe.Event
	err := subscribe.Run(ctx, nc, o, func(_ context.Context, ev subscribe.Event) error {
		got = append(got, ev)
		if len(got) == n {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if len(got) != n {
		t.Fatalf("the subscriber read %d events in 15 s, want %d", len(got), n)
	}
	return got
}

// saSameEvents checks that evs are the daemon's events from sequence 1 on,
// with the daemon's sequence numbers.
func saSameEvents(t *testing.T, td *dmDaemon, evs []subscribe.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	defer cancel()
	recs, err := td.d.Store().Read(ctx, 1, uint64(len(evs)))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		env, err := events.Decode(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if evs[i].Seq != r.Seq || evs[i].Envelope.ID != env.ID {
			t.Fatalf("subscriber's event %d is %d %s, the daemon's is %d %s", i, evs[i].Seq, evs[i].Envelope.ID, r.Seq, env.ID)
		}
	}
}

// TestSubscriberAttack: the subscriber deletes every consumer it can name,
// the daemon's included, and creates durable consumers until refused (at
// most 1000). It is refused at daemon.MaxSubscriberConsumers; the daemon's
// consumers are untouched; trusted requests and writes still succeed; a
// restart on the same directory serves; and subscribers still read the
// stream, with its sequence numbers, once they free a consumer slot.
func TestSubscriberAttack(t *testing.T) {
	t.Parallel()
	dir, clock := dmShortDir(t), newTestClock()
	td := dmStart(t, dir, clock, saListen)
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{Name: "admin"})
	owner := saOwner(t, td)
	own := saConsumers(t, owner)
	if len(own) == 0 {
		t.Fatal("the daemon has no consumer on its stream")
	}

	sub := saSubscriber(t, td)
	js, err := jetstream.New(sub)
	if err != nil {
		t.Fatal(err)
	}
	op := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	// Take every consumer slot there is, then delete the daemon's consumers
	// (by name, and whatever the subscriber can list that is not its own)
	// and take the slots they held: at most 1000 consumers in all.
	created, attempts, refused := 0, 0, error(nil)
	fill := func() {
		for ; created < 1000; attempts++ {
			_, err := js.CreateConsumer(op(), "TRUSTLOG", jetstream.ConsumerConfig{
				Durable: fmt.Sprintf("attack-%d", attempts), AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				refused = err
				attempts++ // the name was not taken; the next try uses another
				return
			}
			created++
		}
	}
	fill()
	// The subject the subscribers' mirror asks the daemon's account for
	// its consumer on: closed to the subscriber.
	req := `{"stream_name":"TRUSTLOG","config":{"durable_name":"through-import","ack_policy":"explicit"}}`
	if _, err := sub.Request("_TRUSTLOG_MAIN.API.CONSUMER.CREATE.TRUSTLOG", []byte(req), time.Second); err == nil {
		t.Error("the subscriber reached the daemon's account")
	}
	for range 3 {
		var names []string
		for _, ci := range saConsumers(t, owner) {
			if !strings.HasPrefix(ci.Name, "attack-") {
				names = append(names, ci.Name)
			}
		}
		if st, err := js.Stream(op(), "TRUSTLOG"); err == nil {
			for n := range st.ConsumerNames(op()).Name() {
				if !strings.HasPrefix(n, "attack-") {
					names = append(names, n)
				}
			}
		}
		// The deletes go out without waiting for their answers, so that
		// the creates right behind them are queued before the daemon can
		// ask for its consumer again.
		for _, n := range names {
			_ = sub.Publish("$JS.API.CONSUMER.DELETE.TRUSTLOG."+n, nil)
		}
		fill()
	}
	if refused == nil {
		t.Fatalf("%d durable consumers created, none refused", created)
	}
	if created > daemon.MaxSubscriberConsumers || !errors.Is(refused, jetstream.ErrMaximumConsumersLimit) {
		t.Errorf("%d consumers created (cap %d), then refused with %v", created, daemon.MaxSubscriberConsumers, refused)
	}

	// The daemon's consumers are all there, and no durable one was added
	// to its stream.
	after := saConsumers(t, owner)
	have, durable := map[string]bool{}, 0
	for _, ci := range after {
		have[ci.Name] = true
		if ci.Config.Durable != "" {
			durable++
		}
	}
	if durable > 0 {
		t.Errorf("%d durable consumers appeared on the daemon's stream", durable)
	}
	for _, ci := range own {
		if !have[ci.Name] {
			t.Errorf("the daemon's consumer %s was deleted", ci.Name)
		}
	}

	// Trusted requests, and a write the daemon must read back.
	c := td.client(t, admin)
	td.must(t, 200, c, "GET", "/1.0", nil)
	td.must(t, 200, c, "PATCH", "/1.0", `{"config":{"user.after":"attack"}}`)
	if err := td.d.Close(); err != nil {
		t.Fatal(err)
	}
	td = dmStart(t, dir, clock, saListen)
	if srv := td.server(t, td.client(t, admin)); srv.Auth != "trusted" || srv.Config["user.after"] != "attack" {
		t.Fatalf("after the restart: auth %q config %v", srv.Auth, srv.Config)
	}

	// The subscriber's consumers survived the restart and still count; it
	// frees one and reads every event, numbered as the daemon numbers them.
	sub = saSubscriber(t, td)
	js, _ = jetstream.New(sub)
	if _, err := js.CreateConsumer(op(), "TRUSTLOG", jetstream.ConsumerConfig{Durable: "one-more"}); !errors.Is(err, jetstream.ErrMaximumConsumersLimit) {
		t.Errorf("a consumer past the cap after the restart: %v", err)
	}
	if err := js.DeleteConsumer(op(), "TRUSTLOG", "attack-0"); err != nil {
		t.Fatalf("the subscriber cannot delete its own consumer: %v", err)
	}
	n := td.lastSeq(t)
	saSameEvents(t, td, saCollect(t, sub, subscribe.Options{Durable: "reader"}, int(n)))
}

// TestSubscriberMirrorOnExistingDir: --nats-listen added to a daemon that
// ran without it keeps the daemon's stream (it stays in the same NATS
// account) and gives subscribers all of it; taken away again, the daemon
// still has it all.
func TestSubscriberMirrorOnExistingDir(t *testing.T) {
	t.Parallel()
	dir, clock := dmShortDir(t), newTestClock()
	td := dmStart(t, dir, clock)
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{Name: "admin"})
	td.must(t, 200, td.client(t, admin), "PATCH", "/1.0", `{"config":{"user.before":"listen"}}`)
	seq := td.lastSeq(t)
	td.d.Close()

	td = dmStart(t, dir, clock, saListen)
	if got := td.lastSeq(t); got != seq {
		t.Fatalf("with --nats-listen the stream is at %d, want %d", got, seq)
	}
	saSameEvents(t, td, saCollect(t, saSubscriber(t, td), subscribe.Options{}, int(seq)))
	td.must(t, 200, td.client(t, admin), "PATCH", "/1.0", `{"config":{"user.with":"listen"}}`)
	seq = td.lastSeq(t)
	td.d.Close()

	td = dmStart(t, dir, clock)
	if srv := td.server(t, td.client(t, admin)); srv.Config["user.before"] != "listen" || srv.Config["user.with"] != "listen" || td.lastSeq(t) != seq {
		t.Errorf("without --nats-listen again: stream at %d (want %d), config %v", td.lastSeq(t), seq, srv.Config)
	}
}

// TestDaemonStreamNoConsumerCap: the daemon's stream takes consumers past
// nats-server's default cap of 1000 per stream, so however many there are
// (the daemon's own, the API's event feeds), the daemon's next one is
// never refused for want of a slot.
func TestDaemonStreamNoConsumerCap(t *testing.T) {
	t.Parallel()
	dir, clock := dmShortDir(t), newTestClock()
	td := dmStart(t, dir, clock, saListen)
	owner := saOwner(t, td)
	for i := range 1001 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := owner.CreateConsumer(ctx, "TRUSTLOG", jetstream.ConsumerConfig{
			AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute})
		cancel()
		if err != nil {
			t.Fatalf("consumer %d refused: %v", i+1, err)
		}
	}
	admin := td.cert(t, "admin")
	td.trust(t, admin, api.CertificatesPost{Name: "admin"})
	td.must(t, 200, td.client(t, admin), "GET", "/1.0", nil)
}
