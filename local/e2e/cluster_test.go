package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore/natstest"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/watch"
	"github.com/trustlog/trustlog/local/daemon"
)

// clusterOf starts n trustlogd instances on a 3-node JetStream cluster with
// an R3 stream.
func clusterOf(t *testing.T, n int) (*natstest.Cluster, []*server) {
	t.Helper()
	nc := natstest.RunCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*server
	for range n {
		var logBuf bytes.Buffer
		d, err := daemon.Start(ctx, daemon.Config{Dir: t.TempDir(), HTTPSAddress: "127.0.0.1:0", NATSURL: nc.URL(), Replicas: 3,
			Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		i := len(out)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("instance %d log:\n%s", i, logBuf.String())
			}
		})
		out = append(out, newServer(t, d, &logBuf))
	}
	return nc, out
}

func stateOf(t *testing.T, s *server) watch.State {
	t.Helper()
	var st watch.State
	_, env := s.call(t, "GET", "/1.0/trustlog/audit/state", nil)
	if err := json.Unmarshal(env.Metadata, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestClusterLeaderLoss stops the JetStream node leading the stream while
// three instances take trust changes and compete for token redemptions:
// no acknowledged change is lost, no token is redeemed twice, the
// instances keep authenticating, and they end with identical models.
func TestClusterLeaderLoss(t *testing.T) {
	t.Parallel()
	nc, ss := clusterOf(t, 3)
	a, b, c := ss[0], ss[1], ss[2]
	pair, cert := newCert(t, "", "steady")
	a.trust(t, cert, "steady")

	// Authentication against B all along.
	stop := make(chan struct{})
	var checks, failures atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		cl := tlsClient(&pair)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := cl.Get("https://" + b.d.HTTPSAddr() + "/1.0/certificates")
			checks.Add(1)
			if err != nil || resp.StatusCode != 200 {
				failures.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	var acked []string
	redeemed := map[string]int{}
	const rounds = 40
	for i := range rounds {
		if i == rounds/2 {
			leader := nc.StreamLeader("TRUSTLOG")
			if leader < 0 {
				t.Fatal("no stream leader")
			}
			nc.Stop(leader)
			t.Logf("stopped stream leader n%d at round %d", leader+1, i)
		}
		key := fmt.Sprintf("user.round%d", i)
		if code, _ := a.call(t, "PATCH", "/1.0", api.ServerPut{Config: map[string]string{key: "1"}}); code == 200 {
			acked = append(acked, key)
		}
		code, env := a.call(t, "POST", "/1.0/certificates", api.CertificatesPost{Name: fmt.Sprintf("tok%d", i), Token: true})
		if code != http.StatusAccepted {
			continue // refused while the stream elected a leader
		}
		var op api.Operation
		_ = json.Unmarshal(env.Metadata, &op)
		tok := api.CertificateAddToken{ClientName: op.Metadata["request"].(map[string]any)["name"].(string),
			Fingerprint: op.Metadata["fingerprint"].(string), Secret: op.Metadata["secret"].(string), Addresses: []string{"x:1"}}.Encode()
		a.secrets = append(a.secrets, op.Metadata["secret"].(string))
		var rwg sync.WaitGroup
		var wins atomic.Int64
		for _, s := range []*server{b, c} {
			rwg.Go(func() {
				p, _ := newCert(t, "", "racer")
				code, _ := do(t, tlsClient(&p), "POST", "https://"+s.d.HTTPSAddr()+"/1.0/certificates", api.CertificatesPost{Type: "client", TrustToken: tok})
				if code == http.StatusCreated {
					wins.Add(1)
				}
			})
		}
		rwg.Wait()
		redeemed[op.ID] = int(wins.Load())
	}
	close(stop)
	wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range ss {
		if err := s.d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cfg := a.d.Model().Config()
	for _, k := range acked {
		if cfg[k] != "1" {
			t.Errorf("acknowledged change %s is lost", k)
		}
	}
	// Count redemptions in the log itself.
	recs, err := a.d.Store().Read(ctx, 1, a.lastSeq(t))
	if err != nil {
		t.Fatal(err)
	}
	inLog := map[string]int{}
	for _, rec := range recs {
		env, _ := events.Decode(rec.Raw)
		if p, err := env.Payload(); err == nil {
			if r, ok := p.(*events.TokenRedeemed); ok {
				inLog[r.ID]++
			}
		}
	}
	for id, n := range inLog {
		if n > 1 || redeemed[id] > 1 {
			t.Errorf("token %s redeemed %d times (%d successes seen)", id, n, redeemed[id])
		}
	}
	sa, sb, sc := stateOf(t, a), stateOf(t, b), stateOf(t, c)
	if sa.Digest != sb.Digest || sa.Digest != sc.Digest || sa.Seq != sb.Seq {
		t.Errorf("instances diverge: %+v %+v %+v", sa, sb, sc)
	}
	t.Logf("%d acknowledged changes, %d tokens redeemed once, %d of %d authentications failed", len(acked), len(inLog), failures.Load(), checks.Load())
	if len(acked) < rounds/2 {
		t.Errorf("only %d of %d changes acknowledged", len(acked), rounds)
	}
	if f := failures.Load(); f > 5 {
		t.Errorf("%d authentications failed during the leader change, want at most 5", f)
	}
}
