package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events/natsstore"
)

// routeUser is the user name members present to each other's route
// listeners; the password is the cluster secret.
const routeUser = "trustlog-route"

// clusterOptions makes the embedded NATS server a member of a JetStream
// cluster of trustlogd instances: its name, its route listener and the
// routes to the members (its own may be listed too), every route
// authenticated by the secret all members share. With three members and an
// R3 stream, the log survives the loss of any one.
func (d *Daemon) clusterOptions(opts *server.Options) error {
	if d.cfg.NATSName == "" {
		return errors.New("--nats-cluster needs --nats-name (a name unique in the cluster)")
	}
	secret, err := readClusterSecret(d.cfg.NATSClusterSecretFile)
	if err != nil {
		return err
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
		if strings.Contains(r, "://") || strings.Contains(r, "@") {
			return fmt.Errorf("--nats-routes: %q: give host:port only (credentials come from the cluster secret)", r)
		}
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("--nats-routes: %q: %w", r, err)
		}
		routes = append(routes, (&url.URL{Scheme: "nats", User: url.UserPassword(routeUser, secret), Host: r}).String())
	}
	if len(routes) == 0 {
		return errors.New("--nats-cluster needs --nats-routes (the route addresses of the members)")
	}
	opts.ServerName = d.cfg.NATSName
	opts.Cluster = server.ClusterOpts{Name: "trustlog", Host: host, Port: port, Username: routeUser, Password: secret}
	opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	return nil
}

// minClusterSecret is the shortest cluster secret accepted, in bytes.
const minClusterSecret = 32

// readClusterSecret reads the cluster secret: the first line of path,
// which must not be readable by other users.
func readClusterSecret(path string) (string, error) {
	if path == "" {
		return "", errors.New("--nats-cluster needs --nats-cluster-secret-file (a file holding the secret every member's routes authenticate with, the same on every member)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--nats-cluster-secret-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("--nats-cluster-secret-file %s: readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--nats-cluster-secret-file: %w", err)
	}
	secret, _, _ := strings.Cut(string(raw), "\n")
	secret = strings.TrimSpace(secret)
	if len(secret) < minClusterSecret {
		return "", fmt.Errorf("--nats-cluster-secret-file %s: the secret is shorter than %d characters (make one with: openssl rand -hex 32)", path, minClusterSecret)
	}
	return secret, nil
}

// openStore opens the stream. In a cluster that is still electing its
// JetStream leaders a request gets no answer at all, and one whose members
// are still joining cannot place a replicated stream ("no suitable peers"),
// so on a cluster each attempt is bounded and retried until ctx ends.
func (d *Daemon) openStore(ctx context.Context, nc *nats.Conn, cfg natsstore.Config) (*natsstore.Store, error) {
	if d.cfg.NATSCluster == "" && d.cfg.Replicas <= 1 {
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
