package daemon

import (
	"context"
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
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events/natsstore"
)

// Users of the embedded NATS server when it listens on the network.
const (
	natsAdminUser      = "trustlogd"
	natsSubscriberUser = "subscriber"
	// natsMirrorUser keeps the subscribers' mirror up to date; it exists
	// in this process only (its password is made at each start and never
	// written) and may connect in process only.
	natsMirrorUser = "trustlogd-mirror"
)

// SubscriberURLFile is the file, in the data directory, holding the URL
// (with the subscriber's user name and password) other services use to
// read the event stream when --nats-listen is set. It is 0600.
const SubscriberURLFile = "subscriber.url"

// MaxSubscriberConsumers is how many consumers subscribers may hold at
// once, all together: further ones are refused ("maximum consumers limit
// reached") until one is deleted or, for an ephemeral one, expires.
const MaxSubscriberConsumers = 100

// Subscribers do not share the daemon's NATS account. The daemon's stream
// stays in the server's global account, where only the daemon connects;
// subscribers connect to the account SUBSCRIBERS, which holds one stream,
// a mirror of the daemon's with the same name (TRUSTLOG) and the same
// sequence numbers, kept up to date by the server. In their account they
// read the mirror through consumers they create and delete as they like,
// up to MaxSubscriberConsumers; they can name nothing of the daemon's
// account, so its consumers are out of their reach, and nothing they do
// takes a consumer slot of the daemon's stream. (Subject permissions alone
// cannot do this: they match whole tokens, so they cannot confine a user
// to consumers whose names start with a prefix, nor count them.)
//
// The global account exports to SUBSCRIBERS exactly what a mirror needs:
// the request creating the mirror's consumer on TRUSTLOG, its deliveries
// (under mirrorDeliverPrefix) and its flow-control replies. SUBSCRIBERS
// imports the consumer request under mirrorAPIPrefix, which the subscriber
// user may not publish to.
const (
	subscriberAccount   = "SUBSCRIBERS"
	mirrorAPIPrefix     = "_TRUSTLOG_MAIN.API"
	mirrorDeliverPrefix = "_TRUSTLOG_MIRROR"
	// maxSubscriberConnections bounds the connections to SUBSCRIBERS.
	maxSubscriberConnections = 256
)

// accountsConfig is the nats-server configuration of the two accounts.
// The daemon's account is written as MAIN (the configuration language
// reserves the global account's name) and becomes the global account in
// natsAccounts. SUBSCRIBERS may hold one stream (the mirror; the
// subscriber user may not create streams anyway) and no memory storage.
// Its file storage is left unbounded: the mirror is as large as the log.
const accountsConfig = `accounts {
  MAIN {
    jetstream: enabled
    exports [
      {service: "$JS.API.CONSUMER.CREATE.%[1]s", accounts: [SUBSCRIBERS]}
      {service: "$JS.FC.%[1]s.>", accounts: [SUBSCRIBERS]}
      {stream: "%[2]s.>", accounts: [SUBSCRIBERS]}
    ]
  }
  SUBSCRIBERS {
    jetstream {max_streams: 1, max_consumers: %[4]d, max_mem: 0, max_file: -1}
    limits {max_connections: %[5]d}
    imports [
      {service: {account: MAIN, subject: "$JS.API.CONSUMER.CREATE.%[1]s"}, to: "%[3]s.CONSUMER.CREATE.%[1]s"}
      {service: {account: MAIN, subject: "$JS.FC.%[1]s.>"}}
      {stream: {account: MAIN, subject: "%[2]s.>"}}
    ]
  }
}`

// natsAccounts returns the daemon's account (the global one, with its
// exports) and SUBSCRIBERS, for a server whose stream is named stream.
func natsAccounts(stream string) (main, subscribers *server.Account, err error) {
	var opts server.Options
	conf := fmt.Sprintf(accountsConfig, stream, mirrorDeliverPrefix, mirrorAPIPrefix, MaxSubscriberConsumers, maxSubscriberConnections)
	if err := opts.ProcessConfigString(conf); err != nil {
		return nil, nil, fmt.Errorf("NATS accounts: %w", err)
	}
	for _, a := range opts.Accounts {
		switch a.Name {
		case "MAIN":
			main = a
		case subscriberAccount:
			subscribers = a
		}
	}
	if main == nil || subscribers == nil {
		return nil, nil, errors.New("NATS accounts: missing from the configuration")
	}
	// The server takes an account named like the global one as the
	// settings of the global account, exports and JetStream included
	// (once other accounts exist, the global account has JetStream only
	// when it is set so), and SUBSCRIBERS' imports refer to this value.
	main.Name = server.DEFAULT_GLOBAL_ACCOUNT
	return main, subscribers, nil
}

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
	pw, err := randomPassword()
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", err
	}
	return pw, nil
}

// randomPassword returns 24 random bytes in hex.
func randomPassword() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// subscriberPermissions let a subscriber, in its own account, read the
// mirror of the event stream through JetStream consumers (ordered or
// durable, which it may also delete) and nothing else: no publishing, no
// stream or message deletion, no purge, no new streams, and no subject of
// the daemon's account (mirrorAPIPrefix is not allowed).
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

// mirrorPermissions let the daemon create and update the mirror in
// SUBSCRIBERS, and nothing else.
func mirrorPermissions(stream string) *server.Permissions {
	api := "$JS.API."
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			api + "STREAM.CREATE." + stream,
			api + "STREAM.UPDATE." + stream,
			api + "STREAM.INFO." + stream,
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// listenOptions configures the embedded server to listen on addr with the
// daemon's own user (everything, in the global account) and, when
// subscribers is set, the accounts above with the read-only subscriber.
func (d *Daemon) listenOptions(opts *server.Options, addr string, subscribers bool) (adminPassword string, err error) {
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
	opts.DontListen = false
	opts.Host, opts.Port = host, port
	if port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.Users = []*server.User{{Username: natsAdminUser, Password: adminPassword}}
	if !subscribers {
		return adminPassword, nil
	}
	subPassword, err := natsPassword(d.cfg.Dir, "nats-subscriber.password")
	if err != nil {
		return "", err
	}
	mirrorPassword, err := randomPassword()
	if err != nil {
		return "", err
	}
	main, subs, err := natsAccounts(natsstore.DefaultStream)
	if err != nil {
		return "", err
	}
	opts.Accounts = []*server.Account{main, subs}
	opts.Users = append(opts.Users,
		&server.User{Username: natsSubscriberUser, Password: subPassword, Account: subs,
			Permissions: subscriberPermissions(natsstore.DefaultStream)},
		&server.User{Username: natsMirrorUser, Password: mirrorPassword, Account: subs,
			Permissions:            mirrorPermissions(natsstore.DefaultStream),
			AllowedConnectionTypes: map[string]struct{}{connectionTypeInProcess: {}}},
	)
	d.subscriberPassword = subPassword
	d.mirrorPassword = mirrorPassword
	return adminPassword, nil
}

// connectionTypeInProcess is jwt.ConnectionTypeInProcess: a connection
// made with nats.InProcessServer.
const connectionTypeInProcess = "IN_PROCESS"

// openSubscriberMirror creates (or keeps) the subscribers' mirror of the
// daemon's stream, with the same name and as many replicas. The server
// fills it in the background and keeps it up to date; it never needs a
// consumer slot of the daemon's stream.
func (d *Daemon) openSubscriberMirror(ctx context.Context) error {
	nc, err := nats.Connect("", nats.InProcessServer(d.ns), nats.Name("trustlogd-mirror"),
		nats.UserInfo(natsMirrorUser, d.mirrorPassword))
	if err != nil {
		return fmt.Errorf("daemon: subscribers' mirror: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("daemon: subscribers' mirror: %w", err)
	}
	replicas := max(d.cfg.Replicas, 1)
	sc := jetstream.StreamConfig{
		Name:         natsstore.DefaultStream,
		Description:  "A read-only mirror of the Trustlog events, for subscribers",
		Storage:      jetstream.FileStorage,
		Retention:    jetstream.LimitsPolicy,
		Replicas:     replicas,
		MaxConsumers: MaxSubscriberConsumers,
		DenyDelete:   true,
		DenyPurge:    true,
		AllowDirect:  true,
		Mirror: &jetstream.StreamSource{
			Name:     natsstore.DefaultStream,
			External: &jetstream.ExternalStream{APIPrefix: mirrorAPIPrefix, DeliverPrefix: mirrorDeliverPrefix},
		},
	}
	// A cluster may still be electing the account's leaders: each attempt
	// is bounded, and retried while ctx allows.
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.CreateOrUpdateStream(actx, sc)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("daemon: subscribers' mirror: %w", err)
		}
	}
}

// writeSubscriberURL records where and how subscribers connect.
func (d *Daemon) writeSubscriberURL() error {
	u := url.URL{Scheme: "nats", User: url.UserPassword(natsSubscriberUser, d.subscriberPassword), Host: d.ns.Addr().String()}
	return writeFileAtomic(filepath.Join(d.cfg.Dir, SubscriberURLFile), []byte(u.String()+"\n"), 0o600)
}

// NATSAddr returns the address the embedded NATS server listens on for
// subscribers ("" when it does not listen).
func (d *Daemon) NATSAddr() string {
	if d.ns == nil || d.cfg.NATSListen == "" {
		return ""
	}
	return d.ns.Addr().String()
}
