package lazyfs_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsTimeout bounds a server start and each JetStream call.
const natsTimeout = 30 * time.Second

// startNATS starts an embedded JetStream server storing in dir, without
// a network listener, and connects to it in process.
func startNATS(t *testing.T, dir string, syncAlways bool) (*server.Server, *nats.Conn) {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "lazyfs",
		DontListen: true,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: syncAlways,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(natsTimeout) {
		t.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return s, nc
}

// TestNATSPowerCut is the point of the file system: JetStream acknowledges
// a publish once the message is in its file store, which by default is
// synced every two minutes, not before the acknowledgement. With the
// store on lazyfs, a power cut right after the acknowledgements loses
// them; with SyncAlways none is lost. The server is "killed" honestly:
// the power is cut first, so nothing its shutdown writes reaches the disk.
func TestNATSPowerCut(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name       string
		syncAlways bool
	}{
		{"default-sync-interval-loses-acknowledged", false},
		{"sync-always-keeps-acknowledged", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mount(t)
			dir := filepath.Join(m.mnt, "js")
			s, nc := startNATS(t, dir, tc.syncAlways)
			ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
			defer cancel()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
				t.Fatal(err)
			}
			// The stream has existed for a while: its creation is on disk
			// (without SyncAlways, creating it is not synced either).
			if err := m.fs.Sync(); err != nil {
				t.Fatal(err)
			}
			before := m.fs.Syncs("js/")
			for i := range n {
				if _, err := js.Publish(ctx, fmt.Sprintf("s.%d", i), []byte(fmt.Sprintf("message %d", i))); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			syncs := m.fs.Syncs("js/") - before

			m.fs.PowerCut()
			nc.Close()
			s.Shutdown()
			s.WaitForShutdown()
			m.fs.Thaw()

			_, nc = startNATS(t, dir, tc.syncAlways)
			js, err = jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			st, err := js.Stream(ctx, "S")
			if err != nil {
				t.Fatalf("the stream, on disk before the publishes, after the power cut: %v", err)
			}
			kept := st.CachedInfo().State.Msgs
			t.Logf("SyncAlways %v: %d publishes acknowledged, %d fsyncs meanwhile, %d messages after the power cut",
				tc.syncAlways, n, syncs, kept)
			if tc.syncAlways {
				if kept != n {
					t.Fatalf("%d of %d acknowledged messages survived the power cut with SyncAlways", kept, n)
				}
				if syncs < n {
					t.Fatalf("%d fsyncs for %d acknowledged publishes with SyncAlways", syncs, n)
				}
			} else if kept >= n {
				t.Fatalf("all %d acknowledged messages survived a power cut without syncs (%d fsyncs): the file system kept what it should have lost", n, syncs)
			}
		})
	}
}
