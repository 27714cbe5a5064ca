package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyncPolicyText covers the --sync values: always, interval:<d> from
// 1ms to 10m, and what is refused.
func TestSyncPolicyText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     SyncPolicy
		err      string
	}{
		{name: "ok/always", in: "always", want: SyncPolicy{}},
		{name: "ok/interval", in: "interval:1s", want: SyncPolicy{Interval: time.Second}},
		{name: "ok/smallest interval", in: "interval:1ms", want: SyncPolicy{Interval: time.Millisecond}},
		{name: "ok/JetStream's default", in: "interval:2m", want: SyncPolicy{Interval: 2 * time.Minute}},
		{name: "fail/empty", in: "", err: "want always or interval:<duration>"},
		{name: "fail/unknown word", in: "never", err: "want always or interval:<duration>"},
		{name: "fail/bare duration", in: "1s", err: "want always or interval:<duration>"},
		{name: "fail/no unit", in: "interval:5", err: "missing unit"},
		{name: "fail/zero", in: "interval:0s", err: "say always"},
		{name: "fail/negative", in: "interval:-1s", err: "want 1ms to 10m0s"},
		{name: "fail/too short", in: "interval:10us", err: "want 1ms to 10m0s"},
		{name: "fail/too long", in: "interval:11m", err: "want 1ms to 10m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := SyncPolicy{Interval: time.Hour} // unchanged on error
			err := p.UnmarshalText([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("%q: %v, want an error with %q", tc.in, err, tc.err)
				}
				if p.Interval != time.Hour {
					t.Errorf("%q: a refused value changed the policy to %v", tc.in, p)
				}
				return
			}
			if err != nil || p != tc.want {
				t.Fatalf("%q: %v %v, want %v", tc.in, p, err, tc.want)
			}
			txt, _ := p.MarshalText()
			var back SyncPolicy
			if err := back.UnmarshalText(txt); err != nil || back != p {
				t.Errorf("%v prints as %q, which reads back as %v %v", p, txt, back, err)
			}
		})
	}
	if err := (Config{Dir: "x", NATSURL: "nats://127.0.0.1:4222", Sync: SyncPolicy{Interval: time.Second}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "sync_interval") {
		t.Errorf("--sync interval with --nats: %v, want a refusal pointing at the servers' sync_interval", err)
	}
	if err := (Config{Dir: "x", Sync: SyncPolicy{Interval: -time.Second}}).Validate(); err == nil {
		t.Error("a negative interval passed Validate")
	}
}

// shortDir returns a fresh directory with a path short enough for the
// unix socket.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestEmbeddedServerSyncs: the embedded NATS server syncs every JetStream
// write before acknowledging it unless --sync says otherwise, single node
// (the running server's JetStream configuration) and clustered (the
// options its server is built from).
func TestEmbeddedServerSyncs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		sync         SyncPolicy
		wantAlways   bool
		wantInterval time.Duration
	}{
		{name: "ok/default is always", wantAlways: true, wantInterval: 2 * time.Minute},
		{name: "ok/interval", sync: SyncPolicy{Interval: 1500 * time.Millisecond}, wantInterval: 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d, err := Start(ctx, Config{Dir: shortDir(t), HTTPSAddress: "127.0.0.1:0", ACMEHTTPAddress: "-", Sync: tc.sync,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			jc := d.ns.JetStreamConfig()
			if jc == nil || jc.SyncAlways != tc.wantAlways || jc.SyncInterval != tc.wantInterval {
				t.Errorf("JetStream config %+v, want sync_always %v, sync_interval %v", jc, tc.wantAlways, tc.wantInterval)
			}
		})
	}

	t.Run("ok/clustered", func(t *testing.T) {
		t.Parallel()
		dir := shortDir(t)
		secret := filepath.Join(dir, "cluster.secret")
		if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []SyncPolicy{{}, {Interval: time.Second}} {
			d := &Daemon{cfg: Config{Dir: dir, NATSName: "t1", NATSCluster: "127.0.0.1:6222", Sync: p,
				NATSRoutes: "127.0.0.1:6222,nats://127.0.0.1:6223", NATSClusterSecretFile: secret}}
			opts, _, err := d.embeddedOptions()
			if err != nil {
				t.Fatal(err)
			}
			if opts.Cluster.Port != 6222 || len(opts.Routes) != 2 || opts.SyncAlways != p.Always() || opts.SyncInterval != p.Interval {
				t.Errorf("policy %v: cluster port %d, %d routes, sync_always %v, sync_interval %v", p, opts.Cluster.Port, len(opts.Routes), opts.SyncAlways, opts.SyncInterval)
			}
		}
	})
}
