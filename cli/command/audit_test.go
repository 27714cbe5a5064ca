package command_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestAuditVerifyNamesTheBreak: after a record is written into the stream
// behind trustlogd's back, `trustlog audit verify` names the sequence and
// the reason, and fails; trustlogd refuses HTTPS with a 503 naming the
// same sequence.
func TestAuditVerifyNamesTheBreak(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{Dir: data, HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	admin.mustRun(t, "", "config", "set", "user.a", "1")
	if out := admin.mustRun(t, "", "audit", "verify"); !strings.Contains(out, "The hash chain is whole.") {
		t.Fatalf("audit verify on an intact log:\n%s", out)
	}

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("trustlog.config.forged", []byte(`{"not":"an envelope"}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	seq, err := d.Store().LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}

	const why = "the record is not a Trustlog event envelope, so it names no predecessor"
	out, _, err := admin.run(t, "", "audit", "verify")
	if err == nil || !strings.Contains(out, "Chain broken at sequence "+strconv.FormatUint(seq, 10)+": "+why+"\n") {
		t.Errorf("audit verify after a forged record at %d: %v\n%s", seq, err, out)
	}

	// The daemon's projector has met the same record: HTTPS is refused.
	want := "Service unavailable: the event log is broken at sequence " + strconv.FormatUint(seq, 10) + ": " + why +
		"; this instance will not vouch for its trust store"
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}}} // the server's certificate is not what is tested
	defer c.CloseIdleConnections()
	var env api.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("https://" + d.HTTPSAddr() + "/1.0")
		if err != nil {
			t.Fatal(err)
		}
		env = api.Response{}
		_ = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if env.ErrorCode != http.StatusServiceUnavailable || env.Error != want {
		t.Errorf("GET /1.0 over HTTPS: %d %q, want 503 %q", env.ErrorCode, env.Error, want)
	}
}
