package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
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
		hostPort, err := routeAddress(r)
		if err != nil {
			return fmt.Errorf("--nats-routes: %q: %w", r, err)
		}
		routes = append(routes, (&url.URL{Scheme: "nats", User: url.UserPassword(routeUser, secret), Host: hostPort}).String())
	}
	if len(routes) == 0 {
		return errors.New("--nats-cluster needs --nats-routes (the route addresses of the members)")
	}
	opts.ServerName = d.cfg.NATSName
	opts.Cluster = server.ClusterOpts{Name: "trustlog", Host: host, Port: port, Username: routeUser, Password: secret}
	opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	return nil
}

// routeAddress returns the host:port of a route as NATS users write it:
// host:port, nats://host:port or nats-route://host:port. Credentials are
// refused (they come from the cluster secret), as are other schemes,
// paths and queries.
func routeAddress(r string) (string, error) {
	hostPort := r
	if strings.Contains(r, "://") {
		u, err := url.Parse(r)
		if err != nil {
			return "", errors.New("not a route URL")
		}
		switch {
		case u.Scheme != "nats" && u.Scheme != "nats-route":
			return "", errors.New("give host:port, nats://host:port or nats-route://host:port")
		case u.User != nil:
			return "", errors.New("no credentials in a route (they come from the cluster secret)")
		case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
			return "", errors.New("a route is host:port, with nothing after it")
		}
		hostPort = u.Host
	} else if strings.Contains(r, "@") {
		return "", errors.New("no credentials in a route (they come from the cluster secret)")
	}
	host, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", err
	}
	if port, err := strconv.Atoi(portText); err != nil || port < 1 || port > 65535 || host == "" {
		return "", errors.New("want host:port with a host and a port from 1 to 65535")
	}
	return hostPort, nil
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
