package command_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigSetListenAddress: `trustlog config set core.https_address`
// (and acme.http.port) with an address the server cannot listen on fails
// with the server's reason and records nothing; a good address moves the
// listener.
func TestConfigSetListenAddress(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	d := startDaemon(t, data)
	admin := cliEnv{conf: filepath.Join(t.TempDir(), "admin"), data: data}
	lastSeq := func() uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		seq, err := d.Store().LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	was := d.HTTPSAddr()
	before := lastSeq()
	for _, tc := range []struct{ name, key, value, err string }{
		{name: "fail/not an address", key: "core.https_address", value: "notanaddress", err: `cannot listen on notanaddress:8443: host "notanaddress" does not resolve`},
		{name: "fail/port in use", key: "core.https_address", value: busy.Addr().String(), err: "cannot listen on " + busy.Addr().String() + " on this machine: bind: address already in use"},
		{name: "fail/acme port in use", key: "acme.http.port", value: busy.Addr().String(), err: "acme.http.port: cannot listen on " + busy.Addr().String()},
	} {
		_, errOut, err := admin.run(t, "", "config", "set", tc.key, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: config set %s %s: %v (stderr %q), want an error with %q", tc.name, tc.key, tc.value, err, errOut, tc.err)
		}
	}
	if got := lastSeq(); got != before {
		t.Errorf("refused changes appended %d events", got-before)
	}
	if got := admin.mustRun(t, "", "config", "show"); strings.Contains(got, "notanaddress") || strings.Contains(got, busy.Addr().String()) {
		t.Errorf("config show after refused changes:\n%s", got)
	}
	if d.HTTPSAddr() != was {
		t.Errorf("listener moved to %s", d.HTTPSAddr())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	next := ln.Addr().String()
	ln.Close()
	admin.mustRun(t, "", "config", "set", "core.https_address", next)
	deadline := time.Now().Add(10 * time.Second)
	for d.HTTPSAddr() != next {
		if time.Now().After(deadline) {
			t.Fatalf("listener at %s 10 s after config set core.https_address %s", d.HTTPSAddr(), next)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
