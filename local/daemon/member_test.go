package daemon_test

// Member-local configuration on one instance: its own core.https_address,
// the shared value a data directory from before member-local keys holds,
// ?target= for another member, and the member name itself.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/local/daemon"
)

// mbAppend appends p to the daemon's stream as another writer would (an
// older trustlogd, another member) and waits until the daemon applied it.
func mbAppend(t *testing.T, td *dmDaemon, p events.Payload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dmTimeout)
	defer cancel()
	m := td.d.Model()
	env, err := events.New(uuid.NewString(), "/trustlog/test", time.Now(), events.Actor{Name: "test", Method: "system"}, p)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := td.d.Store().Append(ctx, m.Seq(), m.Hash(), env)
	if err != nil {
		t.Fatal(err)
	}
	if err := td.d.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// TestMemberHTTPSAddress: a data directory from before member-local keys
// (core.https_address recorded as one shared value) keeps serving there;
// a change through the API is recorded for this instance's member only
// (the shared value stays); another member's value is set with
// ?target=<member> and moves nothing here; an unknown or malformed target
// is refused and appends nothing; unsetting this member's value gives it
// the shared one back.
func TestMemberHTTPSAddress(t *testing.T) {
	t.Parallel()
	dir := dmShortDir(t)
	clock := newTestClock()
	shared := dmFreePort(t)
	first := dmStart(t, dir, clock, func(c *daemon.Config) { c.Member = "a" })
	mbAppend(t, first, &events.ConfigMemberChanged{Member: "a", Key: "core.https_address", Value: ""})
	mbAppend(t, first, &events.ConfigChanged{Key: "core.https_address", Value: shared})
	first.d.Close()

	// Restarted without --https-address: the shared value of an older
	// data directory is this member's too.
	td := dmStart(t, dir, clock, func(c *daemon.Config) { c.Member, c.HTTPSAddress = "a", "" })
	if got := td.d.HTTPSAddr(); got != shared {
		t.Fatalf("listening on %s, want the shared value %s", got, shared)
	}
	if got := td.server(t, nil).Config["core.https_address"]; got != shared {
		t.Errorf("GET /1.0 shows %q, want %q", got, shared)
	}

	own := dmFreePort(t)
	before := td.lastSeq(t)
	td.must(t, 200, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"core.https_address": own}})
	if diff := cmp.Diff([]string{"trustlog.config.member.changed.v1"}, td.types(t, before)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	dmWait(t, "the listener to move to "+own, func() bool { return td.d.HTTPSAddr() == own })
	if m := td.d.Model(); m.ConfigValue("core.https_address") != shared || m.MemberConfigValue("a", "core.https_address") != own {
		t.Errorf("shared %q, member a %q", m.ConfigValue("core.https_address"), m.MemberConfigValue("a", "core.https_address"))
	}

	// Another member, known to the log.
	mbAppend(t, td, &events.ConfigMemberChanged{Member: "b", Key: "core.https_address", Value: "10.0.0.12:8443"})
	before = td.lastSeq(t)
	for _, tc := range []struct {
		name, query string
		code        int
		err         string
	}{
		{name: "fail/unknown member", query: "?target=nobody", code: 404, err: `Cluster member "nobody" not found`},
		{name: "fail/malformed member", query: "?target=-x", code: 400, err: "Invalid target: "},
		{name: "fail/member name too long", query: "?target=" + strings.Repeat("m", 64), code: 400, err: "Invalid target: "},
	} {
		rep := td.call(t, nil, "PATCH", "/1.0"+tc.query, map[string]any{"config": map[string]string{"core.https_address": "10.0.0.99:8443"}})
		if rep.Code != tc.code || !strings.HasPrefix(rep.Env.Error, tc.err) {
			t.Errorf("%s: %s, want %d %q", tc.name, rep, tc.code, tc.err)
		}
		if rep := td.call(t, nil, "GET", "/1.0"+tc.query, nil); rep.Code != tc.code {
			t.Errorf("%s: GET: %s, want %d", tc.name, rep, tc.code)
		}
	}
	if got := td.lastSeq(t); got != before {
		t.Errorf("refused targets appended %d events", got-before)
	}
	td.must(t, 200, nil, "PATCH", "/1.0?target=b", map[string]any{"config": map[string]string{"core.https_address": "10.0.0.13:8443", "user.x": "shared"}})
	if err := td.d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := td.d.Model()
	if m.MemberConfigValue("b", "core.https_address") != "10.0.0.13:8443" || m.MemberConfigValue("a", "core.https_address") != own || m.ConfigValue("user.x") != "shared" {
		t.Errorf("after PATCH ?target=b: b %q, a %q, user.x %q", m.MemberConfigValue("b", "core.https_address"),
			m.MemberConfigValue("a", "core.https_address"), m.ConfigValue("user.x"))
	}
	if got := td.d.HTTPSAddr(); got != own {
		t.Errorf("a change for member b moved this instance to %s", got)
	}
	var srv api.Server
	if err := json.Unmarshal(td.must(t, 200, nil, "GET", "/1.0?target=b", nil).Env.Metadata, &srv); err != nil {
		t.Fatal(err)
	}
	if srv.Config["core.https_address"] != "10.0.0.13:8443" || srv.Config["user.x"] != "shared" {
		t.Errorf("GET /1.0?target=b: %v", srv.Config)
	}
	if got := td.server(t, nil).Config["core.https_address"]; got != own {
		t.Errorf("GET /1.0 (this member): %q, want %q", got, own)
	}

	// Unset: this member follows the shared value again.
	td.must(t, 200, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"core.https_address": ""}})
	dmWait(t, "the listener to move back to "+shared, func() bool { return td.d.HTTPSAddr() == shared })
}

// TestMemberName: without --member or --nats-name an instance makes
// itself a name on first start, keeps it in <dir>/member across
// restarts; --member wins; a malformed name is refused before anything
// starts.
func TestMemberName(t *testing.T) {
	t.Parallel()
	dir := dmShortDir(t)
	clock := newTestClock()
	td := dmStart(t, dir, clock)
	name := td.d.Member()
	raw, err := os.ReadFile(filepath.Join(dir, daemon.MemberFile))
	if err != nil || strings.TrimSpace(string(raw)) != name || name == "" {
		t.Fatalf("member %q, file %q %v", name, raw, err)
	}
	td.d.Close()
	td = dmStart(t, dir, clock)
	if got := td.d.Member(); got != name {
		t.Errorf("after a restart the member is %q, was %q", got, name)
	}
	td.d.Close()
	td = dmStart(t, dir, clock, func(c *daemon.Config) { c.Member = "explicit" })
	if got := td.d.Member(); got != "explicit" {
		t.Errorf("--member explicit: member %q", got)
	}
	td.d.Close()

	for _, tc := range []struct {
		name string
		edit func(*daemon.Config)
		want string
	}{
		{name: "fail/member with a space", edit: func(c *daemon.Config) { c.Member = "a b" }, want: "--member"},
		{name: "fail/nats name used as member", edit: func(c *daemon.Config) { c.NATSName = "x/y" }, want: "--nats-name"},
	} {
		if d, _, err := dmTryStart(dmShortDir(t), clock, tc.edit); err == nil || !strings.Contains(err.Error(), tc.want) {
			if d != nil {
				d.Close()
			}
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, daemon.MemberFile), []byte("bad name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, _, err := dmTryStart(dir, clock); err == nil {
		d.Close()
		t.Error("started with a malformed member file")
	}
}
