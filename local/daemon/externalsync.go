package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// serverSync is what one NATS server reports of how its JetStream file
// store syncs.
type serverSync struct {
	Name     string
	Always   bool
	Interval time.Duration
}

// varz is the part of a nats-server /varz answer (the monitoring endpoint,
// or the data of a $SYS.REQ.SERVER.PING.VARZ reply) read here.
type varz struct {
	Name      string `json:"server_name"`
	JetStream struct {
		Config *struct {
			SyncInterval time.Duration `json:"sync_interval"` // nanoseconds
			SyncAlways   bool          `json:"sync_always"`
		} `json:"config"`
	} `json:"jetstream"`
}

// sync returns the server's sync settings; ok is false for a server
// without JetStream, which holds no stream.
func (v varz) sync() (serverSync, bool) {
	c := v.JetStream.Config
	if c == nil {
		return serverSync{}, false
	}
	return serverSync{Name: v.Name, Always: c.SyncAlways, Interval: c.SyncInterval}, true
}

// varzSubject asks every server of the cluster for its /varz. It is a
// system-account service: an account reaches it only by importing it
// (docs/cluster.md shows how).
const varzSubject = "$SYS.REQ.SERVER.PING.VARZ"

// externalSyncTimeout bounds each way of asking the servers.
const externalSyncTimeout = 2 * time.Second

// externalSync asks the servers of an external NATS cluster how they
// sync: first with a $SYS.REQ.SERVER.PING.VARZ request on nc, answered if
// the account imports that service; else at the monitoring endpoints
// (http://host:8222) given. It returns what the servers said, and how.
func externalSync(ctx context.Context, nc *nats.Conn, monitors []string, client *http.Client) ([]serverSync, string, error) {
	if got, err := varzOverNATS(ctx, nc); err == nil && len(got) > 0 {
		return got, varzSubject, nil
	}
	var out []serverSync
	var errs []error
	for _, m := range monitors {
		s, err := varzOverHTTP(ctx, client, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s...)
	}
	return out, "the monitoring endpoints", errors.Join(errs...)
}

// varzOverNATS gathers the answers to a VARZ ping until every server in
// nc's pool has answered or externalSyncTimeout has passed. Without the
// service, the server answers "no responders" at once.
func varzOverNATS(ctx context.Context, nc *nats.Conn) ([]serverSync, error) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(varzSubject, inbox, []byte("{}")); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, externalSyncTimeout)
	defer cancel()
	want := max(len(nc.Servers()), 1)
	var out []serverSync
	seen := map[string]bool{}
	for len(seen) < want {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break
		}
		if msg.Header.Get("Status") == "503" { // no responders
			return nil, nats.ErrNoResponders
		}
		var reply struct {
			Server struct {
				ID string `json:"id"`
			} `json:"server"`
			Data  varz `json:"data"`
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(msg.Data, &reply) != nil || reply.Error != nil || seen[reply.Server.ID] {
			continue
		}
		seen[reply.Server.ID] = true
		if s, ok := reply.Data.sync(); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// varzOverHTTP reads /varz at a monitoring endpoint ("http://host:8222").
func varzOverHTTP(ctx context.Context, client *http.Client, endpoint string) ([]serverSync, error) {
	ctx, cancel := context.WithTimeout(ctx, externalSyncTimeout)
	defer cancel()
	url := strings.TrimSuffix(endpoint, "/")
	if !strings.HasSuffix(url, "/varz") {
		url += "/varz"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, fmt.Errorf("--nats-monitor %q: %w", endpoint, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("--nats-monitor %q: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("--nats-monitor %q: %s", endpoint, resp.Status)
	}
	var v varz
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return nil, fmt.Errorf("--nats-monitor %q: %w", endpoint, err)
	}
	if s, ok := v.sync(); ok {
		return []serverSync{s}, nil
	}
	return nil, nil
}

// checkExternalSync warns, loudly, when the servers of the external NATS
// cluster acknowledge writes before they are on disk, or when it cannot
// tell: either way an acknowledged change of trust may not survive a
// power failure or an OS crash.
func (d *Daemon) checkExternalSync(ctx context.Context) {
	var monitors []string
	for _, m := range strings.Split(d.cfg.NATSMonitor, ",") {
		if m = strings.TrimSpace(m); m != "" {
			monitors = append(monitors, m)
		}
	}
	got, how, err := externalSync(ctx, d.nc, monitors, http.DefaultClient)
	if len(got) == 0 {
		d.log.Warn("DURABILITY UNKNOWN: cannot tell whether the NATS servers sync JetStream writes to disk before acknowledging them; "+
			"unless every server runs with jetstream { sync_interval: always }, an acknowledged change of trust can be lost to a power failure or an OS crash "+
			"(to have this checked, import "+varzSubject+" into trustlogd's account or give --nats-monitor; docs/cluster.md)",
			"err", errOrNone(err))
		return
	}
	unsynced := 0
	for _, s := range got {
		if s.Always {
			continue
		}
		unsynced++
		d.log.Warn("DURABILITY AT RISK: NATS server acknowledges JetStream writes before they are on disk; "+
			"an acknowledged change of trust (a removed certificate, a redeemed token) can be undone by a power failure or an OS crash; "+
			"set jetstream { sync_interval: always } on every server (docs/cluster.md)",
			"server", s.Name, "sync_interval", s.Interval, "via", how)
	}
	if unsynced == 0 {
		d.log.Info("the NATS servers sync every JetStream write before acknowledging it", "servers", len(got), "via", how)
	}
}

func errOrNone(err error) slog.Value {
	if err == nil {
		return slog.StringValue("none")
	}
	return slog.StringValue(err.Error())
}
