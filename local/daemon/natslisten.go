package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/trustlog/trustlog/events/natsstore"
)

// Users of the embedded NATS server when it listens on the network.
const (
	natsAdminUser      = "trustlogd"
	natsSubscriberUser = "subscriber"
)

// SubscriberURLFile is the file, in the data directory, holding the URL
// (with the subscriber's user name and password) other services use to
// read the event stream when --nats-listen is set. It is 0600.
const SubscriberURLFile = "subscriber.url"

// natsPassword returns the password kept in <dir>/<name> (0600), making
// one on first use.
func natsPassword(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	raw, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(raw))) >= 32 {
		return strings.TrimSpace(string(raw)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", err
	}
	return pw, nil
}

// subscriberPermissions let a subscriber read the event stream through
// JetStream consumers (ordered or durable, created on the stream) and
// nothing else: no publishing to trustlog.>, no stream or message
// deletion, no purge, no new streams.
func subscriberPermissions(stream string) *server.Permissions {
	api := "$JS.API."
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			api + "INFO",
			api + "STREAM.INFO." + stream,
			api + "STREAM.MSG.GET." + stream,
			api + "DIRECT.GET." + stream,
			api + "DIRECT.GET." + stream + ".>",
			api + "CONSUMER.CREATE." + stream,
			api + "CONSUMER.CREATE." + stream + ".>",
			api + "CONSUMER.DURABLE.CREATE." + stream + ".>",
			api + "CONSUMER.INFO." + stream + ".>",
			api + "CONSUMER.NAMES." + stream,
			api + "CONSUMER.LIST." + stream,
			api + "CONSUMER.DELETE." + stream + ".>",
			api + "CONSUMER.MSG.NEXT." + stream + ".>",
			"$JS.ACK." + stream + ".>",
			"$JS.FC." + stream + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// listenOptions configures the embedded server to listen on addr with two
// users: the daemon itself (everything) and the read-only subscriber.
func (d *Daemon) listenOptions(opts *server.Options, addr string) (adminPassword string, err error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--nats-listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", fmt.Errorf("--nats-listen %q: invalid port", addr)
	}
	adminPassword, err = natsPassword(d.cfg.Dir, "nats-admin.password")
	if err != nil {
		return "", err
	}
	subPassword, err := natsPassword(d.cfg.Dir, "nats-subscriber.password")
	if err != nil {
		return "", err
	}
	opts.DontListen = false
	opts.Host, opts.Port = host, port
	if port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.Users = []*server.User{
		{Username: natsAdminUser, Password: adminPassword},
		{Username: natsSubscriberUser, Password: subPassword, Permissions: subscriberPermissions(natsstore.DefaultStream)},
	}
	d.subscriberPassword = subPassword
	return adminPassword, nil
}

// writeSubscriberURL records where and how subscribers connect.
func (d *Daemon) writeSubscriberURL() error {
	u := url.URL{Scheme: "nats", User: url.UserPassword(natsSubscriberUser, d.subscriberPassword), Host: d.ns.Addr().String()}
	return os.WriteFile(filepath.Join(d.cfg.Dir, SubscriberURLFile), []byte(u.String()+"\n"), 0o600)
}

// NATSAddr returns the address the embedded NATS server listens on for
// subscribers ("" when it does not listen).
func (d *Daemon) NATSAddr() string {
	if d.ns == nil || d.cfg.NATSListen == "" {
		return ""
	}
	return d.ns.Addr().String()
}
