package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/watch"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestIncusMonitorLifecycle: `incus monitor --type lifecycle` (the stock
// client) shows trust changes as they happen.
func TestIncusMonitorLifecycle(t *testing.T) {
	t.Parallel()
	s := start(t)
	cli := newIncus(t)
	_, adminCert := newCert(t, cli.conf, "client")
	s.trust(t, adminCert, "admin")
	cli.must(t, "remote", "add", "s", "https://"+s.d.HTTPSAddr(), "--accept-certificate")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli.bin, "monitor", "s:", "--type", "lifecycle", "--format", "json")
	cmd.Env = cli.env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The monitor connects asynchronously: keep making changes until one shows.
	_, newcomer := newCert(t, "", "newcomer")
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	trusted := false
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("incus monitor stopped")
			}
			var ev struct {
				Type     string
				Metadata watch.Lifecycle
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "lifecycle" && ev.Metadata.Action == "certificate-created" {
				if ev.Metadata.Source != "/1.0/certificates/"+fingerprintOf(newcomer) || ev.Metadata.Requestor == nil || ev.Metadata.Requestor.Protocol != "unix" {
					t.Errorf("lifecycle event = %+v", ev.Metadata)
				}
				return
			}
		case <-tick.C:
			if !trusted {
				if code, _ := s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "newcomer", Certificate: base64.StdEncoding.EncodeToString(newcomer.Raw)}); code == 201 {
					trusted = true
				}
			} else {
				// Already trusted before the monitor listened: change it again.
				s.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(newcomer), nil)
				s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "newcomer", Certificate: base64.StdEncoding.EncodeToString(newcomer.Raw)})
			}
		case <-ctx.Done():
			t.Fatal("no certificate-created event within 30 s")
		}
	}
}

func wsDial(t *testing.T, s *server, cert *tls.Certificate, query string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} // the test checks trust, not the server name
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: 10 * time.Second}
	return d.Dial("wss://"+s.d.HTTPSAddr()+"/1.0/events"+query, nil)
}

// TestEventsWebsocket: bad type filters are refused; a client sees only
// its own certificate's events; its stream ends when its trust does.
func TestEventsWebsocket(t *testing.T) {
	t.Parallel()
	s := start(t)
	pair, cert := newCert(t, "", "watcher")
	s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "watcher", Restricted: true, Projects: []string{"web"}, Certificate: base64.StdEncoding.EncodeToString(cert.Raw)})
	if _, resp, err := wsDial(t, s, &pair, "?type=nonsense"); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Errorf("unknown event type accepted: %v %v", err, resp)
	}
	if _, resp, err := wsDial(t, s, &pair, "?type=logging"); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("logging for a restricted client: %v %v", err, resp)
	}
	if _, resp, err := wsDial(t, s, nil, ""); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("untrusted websocket: %v %v", err, resp)
	}
	conn, _, err := wsDial(t, s, &pair, "?type=lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, other := newCert(t, "", "other")
	s.trust(t, other, "other") // not visible to a restricted client
	s.call(t, "PATCH", "/1.0/certificates/"+fingerprintOf(cert), map[string]any{"description": "seen"})
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var ev watch.Event
	var l watch.Lifecycle
	_ = json.Unmarshal(msg, &ev)
	_ = json.Unmarshal(ev.Metadata, &l)
	if l.Action != "certificate-updated" || l.Source != "/1.0/certificates/"+fingerprintOf(cert) {
		t.Errorf("first event a restricted client sees: %s", msg)
	}
	s.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(cert), nil)
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Errorf("stream of a removed client ended with %v, want close 1008", err)
			}
			return
		}
		t.Logf("after removal: %s", msg)
	}
}

// sse reads server-sent events until n events (not comments) or the end.
func sse(t *testing.T, body io.Reader, n int) []map[string]string {
	t.Helper()
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
				if len(out) == n {
					return out
				}
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, ":") {
			cur[k] = v
		}
	}
	return out
}

// TestMonitorStream covers GET /1.0/trustlog/events: from a sequence (0
// being the first event), filtered by type, bad parameters refused, the end of the caller's trust.
func TestMonitorStream(t *testing.T) {
	t.Parallel()
	s := start(t)
	pair, cert := newCert(t, "", "admin")
	s.trust(t, cert, "admin")
	_, other := newCert(t, "", "other")
	s.trust(t, other, "other")
	c := tlsClient(&pair)
	c.Timeout = 0
	base := "https://" + s.d.HTTPSAddr() + "/1.0/trustlog/events"
	for name, q := range map[string]string{
		"since past the end": "?since=999", "since in the future": "?since=2999-01-01T00:00:00Z",
		"since before the first event": "?since=2000-01-01T00:00:00Z", "since garbage": "?since=yesterday", "unknown type": "?type=certificate.exploded",
	} {
		code, env := do(t, c, "GET", base+q, nil)
		if code != 400 || env.Error == "" {
			t.Errorf("%s: %d %+v, want 400", name, code, env)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// since=0 is the first event, as since=1.
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"?since=0", nil)
	resp0, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := sse(t, resp0.Body, 1); resp0.StatusCode != 200 || len(got) != 1 || got[0]["id"] != "1" {
		t.Errorf("since=0: %d, first event %+v, want id 1", resp0.StatusCode, got)
	}
	resp0.Body.Close()
	req, _ = http.NewRequestWithContext(ctx, "GET", base+"?since=1&type=certificate.trusted", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	got := sse(t, resp.Body, 2)
	if len(got) != 2 || got[0]["event"] != "trustlog.certificate.trusted.v1" || got[0]["id"] != "2" && got[0]["id"] != "1" {
		t.Fatalf("events: %+v", got)
	}
	var env events.Envelope
	if err := json.Unmarshal([]byte(got[1]["data"]), &env); err != nil || !strings.Contains(string(env.Data), fingerprintOf(other)) {
		t.Errorf("second event %v: %s", err, got[1]["data"])
	}

	// A stream ends when its caller's trust does.
	req, _ = http.NewRequestWithContext(ctx, "GET", base, nil)
	resp2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	s.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(cert), nil)
	rest := sse(t, resp2.Body, 10)
	if len(rest) == 0 || rest[len(rest)-1]["event"] != "trustlog.end" {
		t.Errorf("stream after removal: %+v", rest)
	}
}

// TestAudit covers verify (a healthy chain, then a record written behind
// Trustlog's back with the raw NATS API), the trust store at a past
// sequence, and the history of one certificate.
func TestAudit(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logBuf bytes.Buffer
	d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := newServer(t, d, &logBuf)
	_, a := newCert(t, "", "alice")
	s.trust(t, a, "alice")
	atTrusted := s.lastSeq(t)
	s.call(t, "DELETE", "/1.0/certificates/"+fingerprintOf(a), nil)

	var v watch.Verification
	_, env := s.call(t, "GET", "/1.0/trustlog/audit/verify", nil)
	if err := json.Unmarshal(env.Metadata, &v); err != nil || !v.OK || v.FirstBreak != 0 || v.Events != s.lastSeq(t) {
		t.Fatalf("verify on a healthy stream: %+v (%v)", v, err)
	}
	var certs []api.Certificate
	_, env = s.call(t, "GET", "/1.0/trustlog/audit/trust?at="+strconv.FormatUint(atTrusted, 10), nil)
	if err := json.Unmarshal(env.Metadata, &certs); err != nil || len(certs) != 1 || certs[0].Name != "alice" {
		t.Errorf("trust at %d: %s", atTrusted, env.Metadata)
	}
	_, env = s.call(t, "GET", "/1.0/trustlog/audit/trust?at="+strconv.FormatUint(s.lastSeq(t), 10), nil)
	if strings.Contains(string(env.Metadata), "alice") {
		t.Errorf("trust now still lists alice: %s", env.Metadata)
	}
	var hist []watch.HistoryEntry
	_, env = s.call(t, "GET", "/1.0/trustlog/audit/history?subject="+fingerprintOf(a)[:16], nil)
	_ = json.Unmarshal(env.Metadata, &hist)
	if len(hist) != 2 || hist[0].Action != "certificate-created" || hist[1].Action != "certificate-deleted" || hist[0].Actor.Protocol != "unix" {
		t.Errorf("history: %+v", hist)
	}

	// The same through the CLI.
	conf := t.TempDir()
	if out := trustlogCLI(t, s, conf, "audit", "verify"); !strings.Contains(out, "The hash chain is whole.") {
		t.Errorf("trustlog audit verify:\n%s", out)
	}
	if out := trustlogCLI(t, s, conf, "audit", "history", "alice", "--format", "csv"); !strings.Contains(out, "certificate-created") || !strings.Contains(out, "certificate-deleted") {
		t.Errorf("trustlog audit history alice:\n%s", out)
	}
	if out := trustlogCLI(t, s, conf, "config", "trust", "list", "--at", strconv.FormatUint(atTrusted, 10), "--format", "csv"); !strings.Contains(out, "alice") {
		t.Errorf("trustlog config trust list --at:\n%s", out)
	}

	// Write behind Trustlog's back: a record that is no envelope.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("trustlog.cert.forged", []byte(`{"not":"an envelope"}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	forged := s.lastSeq(t)
	_, env = s.call(t, "GET", "/1.0/trustlog/audit/verify", nil)
	v = watch.Verification{}
	_ = json.Unmarshal(env.Metadata, &v)
	if v.OK || len(v.Undecodable) != 1 || v.Undecodable[0] != forged {
		t.Errorf("verify after a forged record at %d: %+v", forged, v)
	}
	// The next real write chains on the forged record's hash, so the break is
	// reported where an envelope does not match its predecessor.
	_, b := newCert(t, "", "bob")
	s.trust(t, b, "bob")
	_, env = s.call(t, "GET", "/1.0/trustlog/audit/verify", nil)
	v = watch.Verification{}
	_ = json.Unmarshal(env.Metadata, &v)
	if v.OK || v.Undecodable[0] != forged {
		t.Errorf("verify after the next write: %+v", v)
	}
}

// TestDeniedAttemptsAggregated: a flood of failed redemptions and refused
// changes becomes one AccessDeniedSummary event with counts per caller,
// without the token text, and shows in the caller's history.
func TestDeniedAttemptsAggregated(t *testing.T) {
	t.Parallel()
	s := start(t)
	strangerPair, stranger := newCert(t, "", "stranger")
	restrictedPair, restricted := newCert(t, "", "restricted")
	s.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: "restricted", Restricted: true, Projects: []string{"web"},
		Certificate: base64.StdEncoding.EncodeToString(restricted.Raw)})
	base := "https://" + s.d.HTTPSAddr()
	garbage := api.CertificateAddToken{ClientName: "x", Fingerprint: strings.Repeat("a", 64), Addresses: []string{"127.0.0.1:1"},
		Secret: strings.Repeat("f", 64)}.Encode()
	before := s.lastSeq(t)
	for range 50 {
		if code, _ := do(t, tlsClient(&strangerPair), "POST", base+"/1.0/certificates", api.CertificatesPost{Type: "client", TrustToken: garbage}); code != 403 {
			t.Fatalf("garbage token: %d", code)
		}
	}
	for range 20 {
		if code, _ := do(t, tlsClient(&restrictedPair), "PATCH", base+"/1.0", api.ServerPut{Config: map[string]string{"user.x": "1"}}); code != 403 {
			t.Fatalf("restricted PATCH: %d", code)
		}
	}
	if s.lastSeq(t) != before {
		t.Fatal("refused requests appended events before the flush")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := s.d.Service().FlushDenials(ctx)
	if err != nil || n != 1 {
		t.Fatalf("FlushDenials = %d, %v; want 1 event", n, err)
	}
	if err := s.d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := s.d.Store().Read(ctx, before+1, s.lastSeq(t))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, rec := range recs {
		if strings.Contains(string(rec.Raw), garbage) || strings.Contains(string(rec.Raw), strings.Repeat("f", 64)) {
			t.Error("token text in an AccessDenied event")
		}
		env, _ := events.Decode(rec.Raw)
		p, _ := env.Payload()
		if d, ok := p.(*events.AccessDeniedSummary); ok {
			for _, c := range d.Callers {
				counts[c.Kind+" "+c.ActorName] += c.Count
			}
		}
	}
	want := map[string]int{"token-redemption " + fingerprintOf(stranger): 50, "admin " + fingerprintOf(restricted): 20}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("counts = %v, want %v", counts, want)
			break
		}
	}
	var hist []api.AuditEntry
	_, env := s.call(t, "GET", "/1.0/trustlog/audit/history?subject="+fingerprintOf(stranger), nil)
	_ = json.Unmarshal(env.Metadata, &hist)
	if len(hist) != 1 || !strings.Contains(hist[0].Action, "denied-token-redemption (50×") {
		t.Errorf("history of the stranger: %+v", hist)
	}
	if n, _ := s.d.Service().FlushDenials(ctx); n != 0 {
		t.Errorf("second flush wrote %d events, want 0", n)
	}
}
