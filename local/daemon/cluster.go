package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events/natsstore"
)

// clusterOptions makes the embedded NATS server a member of a JetStream
// cluster of trustlogd instances: its name, its route listener and the
// routes to the members (its own may be listed too). With three members
// and an R3 stream, the log survives the loss of any one.
func (d *Daemon) clusterOptions(opts *server.Options) error {
	if d.cfg.NATSName == "" {
		return errors.New("--nats-cluster needs --nats-name (a name unique in the cluster)")
	}
	host, portText, err := net.SplitHostPort(d.cfg.NATSCluster)
	if err != nil {
		return fmt.Errorf("--nats-cluster %q: %w", d.cfg.NATSCluster, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("--nats-cluster %q: invalid port", d.cfg.NATSCluster)
	}
	var routes []string
	for _, r := range strings.Split(d.cfg.NATSRoutes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if !strings.Contains(r, "://") {
			r = "nats://" + r
		}
		routes = append(routes, r)
	}
	if len(routes) == 0 {
		return errors.New("--nats-cluster needs --nats-routes (the route addresses of the members)")
	}
	opts.ServerName = d.cfg.NATSName
	opts.Cluster = server.ClusterOpts{Name: "trustlog", Host: host, Port: port}
	opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	return nil
}

// openStore opens the stream. In a cluster that is still electing its
// JetStream leaders a request gets no answer at all, so each attempt is
// bounded and retried until ctx ends.
func (d *Daemon) openStore(ctx context.Context, nc *nats.Conn, cfg natsstore.Config) (*natsstore.Store, error) {
	if d.cfg.NATSCluster == "" {
		return natsstore.Open(ctx, nc, cfg)
	}
	for {
		// Created, and answering: the stream has a leader, so the requests
		// that follow (replay, appends) are answered.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := natsstore.Open(actx, nc, cfg)
		if err == nil {
			_, err = st.LastSeq(actx)
		}
		cancel()
		if err == nil {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
