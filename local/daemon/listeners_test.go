package daemon_test

// Listener keys checked before they are recorded: --https-address at
// start, acme.http.port through the API, and the listener CheckListen
// keeps for the move.

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trustlog/trustlog/functions/serverinfo"
	"github.com/trustlog/trustlog/local/daemon"
)

// TestHTTPSAddressFlag: a --https-address this machine cannot listen on
// (a host name that does not resolve, a port in use) stops the start with
// the reason, naming the flag, and records nothing: the next start
// without the flag serves where the last good one said.
func TestHTTPSAddressFlag(t *testing.T) {
	t.Parallel()
	dir := dmShortDir(t)
	clock := newTestClock()
	good := dmFreePort(t)
	td := dmStart(t, dir, clock, func(c *daemon.Config) { c.HTTPSAddress = good })
	seq := td.lastSeq(t)
	td.d.Close()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct{ name, addr, err string }{
		{name: "fail/host name that does not resolve", addr: "notanaddress", err: `daemon: --https-address: cannot listen on notanaddress:8443: host "notanaddress" does not resolve`},
		{name: "fail/port in use", addr: busy.Addr().String(), err: "daemon: --https-address: cannot listen on " + busy.Addr().String() + " on this machine: bind: address already in use"},
	} {
		d, logs, err := dmTryStart(dir, clock, func(c *daemon.Config) { c.HTTPSAddress = tc.addr })
		if err == nil {
			d.Close()
			t.Errorf("%s: started", tc.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q\n%s", tc.name, err, tc.err, logs)
		}
	}

	td = dmStart(t, dir, clock, func(c *daemon.Config) { c.HTTPSAddress = "" })
	if got := td.lastSeq(t); got != seq {
		t.Errorf("refused starts appended %d events", got-seq)
	}
	if got := td.d.HTTPSAddr(); got != good {
		t.Errorf("listening on %s, want %s", got, good)
	}
}

// TestCheckListenKeeps: the listener CheckListen binds is kept for the
// move (no other process can take the address meanwhile), and the change
// then recorded moves the API onto it.
func TestCheckListenKeeps(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock())
	next := dmFreePort(t)
	if err := td.d.CheckListen(context.Background(), serverinfo.KeyHTTPSAddress, next); err != nil {
		t.Fatal(err)
	}
	if ln, err := net.Listen("tcp", next); err == nil {
		ln.Close()
		t.Fatalf("%s was not kept after the check", next)
	}
	// Checked again (a retried request): still fine.
	td.must(t, 200, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"core.https_address": next}})
	dmWait(t, "the listener to move to "+next, func() bool { return td.d.HTTPSAddr() == next })
	td.server(t, td.client(t, td.cert(t, "anyone")))
}

// TestACMEHTTPPortKey: acme.http.port is checked as core.https_address
// is (a port in use is refused, nothing recorded), a good value starts
// the plain-HTTP challenge listener there without a restart, a new one
// moves it, and unsetting the key stops it.
func TestACMEHTTPPortKey(t *testing.T) {
	t.Parallel()
	td := dmStart(t, dmShortDir(t), newTestClock())
	if got := td.d.ACMEHTTPAddr(); got != "" {
		t.Fatalf("challenge listener at %q with acme.http.port unset", got)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	before := td.lastSeq(t)
	for _, tc := range []struct{ name, value, err string }{
		{name: "fail/malformed", value: "eighty", err: `Invalid config: acme.http.port: "eighty" is not a port or host:port`},
		{name: "fail/port in use", value: busy.Addr().String(), err: "Invalid config: acme.http.port: cannot listen on " + busy.Addr().String() + " on this machine: bind: address already in use"},
		{name: "fail/the HTTPS port", value: td.d.HTTPSAddr(), err: "Invalid config: acme.http.port: cannot listen on " + td.d.HTTPSAddr() + " on this machine: bind: address already in use"},
	} {
		rep := td.call(t, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"acme.http.port": tc.value}})
		if rep.Code != 400 || !strings.HasPrefix(rep.Env.Error, tc.err) {
			t.Errorf("%s: %s, want 400 %q", tc.name, rep, tc.err)
		}
	}
	if got := td.lastSeq(t); got != before {
		t.Errorf("refused changes appended %d events", got-before)
	}

	for range 2 { // start it, then move it
		addr := dmFreePort(t)
		td.must(t, 200, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"acme.http.port": addr}})
		dmWait(t, "the challenge listener at "+addr, func() bool { return td.d.ACMEHTTPAddr() == addr })
		resp, err := http.Get("http://" + addr + "/.well-known/acme-challenge/none")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("challenge listener at %s: %d, want 404 for an unknown token", addr, resp.StatusCode)
		}
	}
	if diff := cmp.Diff([]string{"trustlog.config.member.changed.v1", "trustlog.config.member.changed.v1"}, td.types(t, before)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	last := td.d.ACMEHTTPAddr()
	td.must(t, 200, nil, "PATCH", "/1.0", map[string]any{"config": map[string]string{"acme.http.port": ""}})
	dmWait(t, "the challenge listener to stop", func() bool { return td.d.ACMEHTTPAddr() == "" })
	if c, err := net.Dial("tcp", last); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", last)
	}
}
