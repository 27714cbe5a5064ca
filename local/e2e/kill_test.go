package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/watch"
	"github.com/trustlog/trustlog/local/internal/toolbin"
	"github.com/trustlog/trustlog/projections"
)

// startTrustlogd runs the trustlogd binary on dir against natsURL and
// waits until its unix socket answers.
func startTrustlogd(t *testing.T, bin, dir, natsURL string) (*exec.Cmd, *http.Client) {
	t.Helper()
	cmd := exec.Command(bin, "--dir", dir, "--https-address", "127.0.0.1:0", "--nats", natsURL)
	cmd.Env = append(os.Environ(), "TRUSTLOG_DIR="+dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := unixClient(filepath.Join(dir, "unix.socket"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("http://unix.socket/1.0")
		if err == nil {
			resp.Body.Close()
			return cmd, c
		}
		if time.Now().After(deadline) {
			t.Fatalf("trustlogd did not answer on its socket within 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replayDigest folds the whole stream into a fresh model.
func replayDigest(t *testing.T, st *natsstore.Store) (uint64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last, err := st.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := projections.NewBuilder(nil)
	recs, err := st.Read(ctx, 1, last)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		_ = b.Apply(rec)
	}
	return last, projections.Digest(b.Model())
}

// TestKillDuringWrites: trustlogd killed with SIGKILL in the middle of a
// stream of writes, then restarted on the same data directory, ends with a
// read model equal to a full replay of the stream; and every write it
// acknowledged before dying is in the stream.
func TestKillDuringWrites(t *testing.T) {
	t.Parallel()
	bin := toolbin.Build(t, ".", toolbin.Module+"/local", "trustlogd-e2e")
	ns := natstest.RunServer(t)
	dir, err := os.MkdirTemp("", "tlk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd, c := startTrustlogd(t, bin, dir, ns.ClientURL())

	var acked atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			body := fmt.Sprintf(`{"config":{"user.k%d":"v"}}`, i)
			req, _ := http.NewRequest("PATCH", "http://unix.socket/1.0", strings.NewReader(body))
			resp, err := c.Do(req)
			if err != nil {
				return // killed
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				acked.Store(int64(i + 1))
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for acked.Load() < 50 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 50 writes acknowledged in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	<-done
	n := acked.Load()

	_, c2 := startTrustlogd(t, bin, dir, ns.ClientURL())
	st := natstest.OpenStoreOn(t, ns)
	last, want := replayDigest(t, st)
	var got watch.State
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, env := do(t, c2, "GET", "http://unix.socket/1.0/trustlog/audit/state", nil)
		_ = json.Unmarshal(env.Metadata, &got)
		if got.Seq >= last || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Seq != last || got.Digest != want {
		t.Errorf("restarted model at %d digest %s; full replay at %d digest %s", got.Seq, got.Digest, last, want)
	}
	// Every acknowledged write is in the stream.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, _ := st.Read(ctx, 1, last)
	seen := map[string]bool{}
	for _, rec := range recs {
		env, _ := events.Decode(rec.Raw)
		if p, err := env.Payload(); err == nil {
			if e, ok := p.(*events.ConfigChanged); ok {
				seen[e.Key] = true
			}
		}
	}
	for i := range n {
		if !seen[fmt.Sprintf("user.k%d", i)] {
			t.Errorf("acknowledged write %d is not in the stream", i)
		}
	}
	t.Logf("%d writes acknowledged before SIGKILL; stream at %d; digests match: %v", n, last, got.Digest == want)
}
