package daemon_test

// An external NATS cluster (--nats) that acknowledges writes before they
// are on disk is reported loudly at start, as is one trustlogd cannot ask.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/local/daemon"
)

// edsConf is a nats-server configuration as docs/cluster.md recommends:
// trustlogd's account (APP) imports the VARZ service of the system
// account, so trustlogd can ask every server how it syncs. %s is the
// store directory, %s the rest of the jetstream block.
const edsConf = `
listen: 127.0.0.1:-1
server_name: ext1
jetstream {
  store_dir: %q
  %s
}
accounts {
  SYS { users [{user: sys, password: sys-pass}], exports [{service: "$SYS.REQ.SERVER.PING.VARZ"}] }
  APP {
    jetstream: enabled
    users [{user: app, password: app-pass}]
    imports [{service: {account: SYS, subject: "$SYS.REQ.SERVER.PING.VARZ"}}]
  }
}
system_account: SYS
`

// edsServer starts a nats-server from configuration text; monitor adds
// its HTTP monitoring endpoint on a free loopback port.
func edsServer(t *testing.T, conf string, monitor bool) *server.Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs, opts.NoLog = true, true
	if monitor {
		opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s
}

// TestExternalSyncWarning: started against servers that do not sync each
// write (JetStream's default), trustlogd warns that acknowledged changes
// of trust can be lost, naming the server; against servers that sync
// always it says so quietly; when it cannot ask (no VARZ import, no
// monitoring endpoint, or one that does not answer) it warns that it
// cannot tell.
func TestExternalSyncWarning(t *testing.T) {
	t.Parallel()
	appURL := func(s *server.Server) string {
		return "nats://app:app-pass@" + s.Addr().(*net.TCPAddr).String()
	}
	for _, tc := range []struct {
		name    string
		server  func(t *testing.T) (url, monitor string)
		want    string
		notWant string
	}{
		{
			name: "ok/synced, asked over NATS",
			server: func(t *testing.T) (string, string) {
				return appURL(edsServer(t, fmt.Sprintf(edsConf, t.TempDir(), "sync_interval: always"), false)), ""
			},
			want: "the NATS servers sync every JetStream write before acknowledging it", notWant: "DURABILITY",
		},
		{
			name: "fail/not synced, asked over NATS",
			server: func(t *testing.T) (string, string) {
				return appURL(edsServer(t, fmt.Sprintf(edsConf, t.TempDir(), ""), false)), ""
			},
			want: `DURABILITY AT RISK: NATS server acknowledges JetStream writes before they are on disk`,
		},
		{
			name: "fail/not synced, monitoring endpoint",
			server: func(t *testing.T) (string, string) {
				s := edsServer(t, fmt.Sprintf("listen: 127.0.0.1:-1\nserver_name: ext1\njetstream { store_dir: %q }\n", t.TempDir()), true)
				return s.ClientURL(), "http://" + s.MonitorAddr().String()
			},
			want: "DURABILITY AT RISK",
		},
		{
			name: "fail/cannot ask",
			server: func(t *testing.T) (string, string) {
				return natstest.RunServer(t).ClientURL(), ""
			},
			want: "DURABILITY UNKNOWN: cannot tell whether the NATS servers sync",
		},
		{
			name: "fail/monitoring endpoint does not answer",
			server: func(t *testing.T) (string, string) {
				return natstest.RunServer(t).ClientURL(), "http://" + dmFreePort(t)
			},
			want: "DURABILITY UNKNOWN",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, monitor := tc.server(t)
			td := dmStart(t, dmShortDir(t), newTestClock(), func(c *daemon.Config) { c.NATSURL, c.NATSMonitor = url, monitor })
			log := td.log.String()
			if !strings.Contains(log, tc.want) {
				t.Errorf("the log does not say %q:\n%s", tc.want, log)
			}
			if tc.notWant != "" && strings.Contains(log, tc.notWant) {
				t.Errorf("the log says %q:\n%s", tc.notWant, log)
			}
			if strings.Contains(tc.want, "AT RISK") && !strings.Contains(log, "server=ext1") {
				t.Errorf("the warning does not name the server:\n%s", log)
			}
		})
	}
}
