package e2e_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"os/exec"
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
	"github.com/trustlog/trustlog/local/internal/toolbin"
)

// startListening starts trustlogd with its NATS server listening for
// subscribers, and returns it with the subscriber URL it wrote.
func startListening(t *testing.T) (*server, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "tls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: dir, HTTPSAddress: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	path := filepath.Join(dir, daemon.SubscriberURLFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", path, st, err)
	}
	raw, _ := os.ReadFile(path)
	return newServer(t, d, nil), strings.TrimSpace(string(raw))
}

// collect runs a subscription until it has n events or 15 s pass.
func collect(t *testing.T, nc *nats.Conn, o subscribe.Options, n int) []subscribe.Event {
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
	return got
}

func trustedFingerprints(evs []subscribe.Event) []string {
	var out []string
	for _, ev := range evs {
		if e, ok := ev.Payload.(*events.CertificateTrusted); ok {
			out = append(out, e.Fingerprint)
		}
	}
	return out
}

// TestSubscriberAccess: the read-only subscriber of --nats-listen follows
// the stream with durable and ephemeral consumers, resumes after a restart
// where it stopped, and can neither write, delete nor purge.
func TestSubscriberAccess(t *testing.T) {
	t.Parallel()
	s, url := startListening(t)
	_, a := newCert(t, "", "a")
	s.trust(t, a, "a")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	first := collect(t, nc, subscribe.Options{Durable: "audit"}, int(s.lastSeq(t)))
	if fps := trustedFingerprints(first); len(fps) != 1 || fps[0] != fingerprintOf(a) {
		t.Fatalf("first run saw %v", fps)
	}
	// The durable consumer resumes after the last acknowledged event.
	_, b := newCert(t, "", "b")
	s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "b", Certificate: base64.StdEncoding.EncodeToString(b.Raw)})
	again := collect(t, nc, subscribe.Options{Durable: "audit"}, 1)
	if fps := trustedFingerprints(again); len(fps) != 1 || fps[0] != fingerprintOf(b) || again[0].Envelope.ID == "" {
		t.Fatalf("after restart the durable consumer delivered %v", fps)
	}
	// Ephemeral, from a sequence and from a time.
	if evs := collect(t, nc, subscribe.Options{StartSeq: again[0].Seq}, 1); evs[0].Seq != again[0].Seq {
		t.Errorf("from sequence %d got %d", again[0].Seq, evs[0].Seq)
	}
	if evs := collect(t, nc, subscribe.Options{StartTime: again[0].Envelope.Time.Add(-time.Millisecond)}, 1); evs[0].Seq != again[0].Seq {
		t.Errorf("from a time got %d, want %d", evs[0].Seq, again[0].Seq)
	}
	if evs := collect(t, nc, subscribe.Options{Subjects: []string{"trustlog.cert." + fingerprintOf(b)}}, 1); evs[0].Seq != again[0].Seq {
		t.Errorf("subject filter got %d", evs[0].Seq)
	}

	// What the subscriber may not do. A denied request gets no answer (the
	// server reports the violation on the connection), so each is bounded.
	js, _ := jetstream.New(nc)
	op := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	before := s.lastSeq(t)
	env, _ := events.New("forged", "urn:x", time.Now(), events.Actor{}, events.CertificateRemoved{Fingerprint: fingerprintOf(a)})
	raw, _ := env.Marshal()
	if _, err := js.Publish(op(), "trustlog.cert."+fingerprintOf(a), raw); err == nil {
		t.Error("the subscriber published into the stream")
	}
	if err := js.DeleteStream(op(), "TRUSTLOG"); err == nil {
		t.Error("the subscriber deleted the stream")
	}
	if st, err := js.Stream(op(), "TRUSTLOG"); err == nil {
		if err := st.Purge(op()); err == nil {
			t.Error("the subscriber purged the stream")
		}
		if err := st.DeleteMsg(op(), 1); err == nil {
			t.Error("the subscriber deleted an event")
		}
	} else {
		t.Errorf("the subscriber cannot read the stream's info: %v", err)
	}
	if _, err := js.CreateStream(op(), jetstream.StreamConfig{Name: "MINE", Subjects: []string{"mine.>"}}); err == nil {
		t.Error("the subscriber created a stream")
	}
	if after := s.lastSeq(t); after != before {
		t.Errorf("the stream moved from %d to %d", before, after)
	}
	if code, _ := s.call(t, "GET", "/1.0/trustlog/audit/verify", nil); code != 200 {
		t.Errorf("verify after the attempts: %d", code)
	}
}

// TestExampleSubscriber runs examples/subscriber against a running
// trustlogd and sees a certificate trusted and removed.
func TestExampleSubscriber(t *testing.T) {
	t.Parallel()
	bin := toolbin.Build(t, ".", toolbin.Module+"/examples/subscriber", "example-subscriber")
	s, url := startListening(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--nats", url, "--durable", "example")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	_, c := newCert(t, "", "watched")
	fp := fingerprintOf(c)
	s.trust(t, c, "watched")
	s.call(t, "DELETE", "/1.0/certificates/"+fp, nil)
	sc := bufio.NewScanner(out)
	var trusted, removed bool
	for !(trusted && removed) && sc.Scan() {
		line := sc.Text()
		trusted = trusted || strings.Contains(line, "trusted "+fp)
		removed = removed || strings.Contains(line, "removed "+fp)
	}
	if !trusted || !removed {
		t.Errorf("the example saw trusted %v removed %v", trusted, removed)
	}
}
