// Package daemon is trustlogd, the all-in-one local host: it runs an
// embedded NATS server with JetStream (or connects to an external one), the
// projector, and every function on one mux, served over HTTPS and over a
// unix socket with full local access.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/natsstore"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/frontdoor"
	"github.com/trustlog/trustlog/functions/sealing"
	"github.com/trustlog/trustlog/functions/serverinfo"
	"github.com/trustlog/trustlog/functions/service"
	"github.com/trustlog/trustlog/projections"
)

// SweepInterval is how often expired trust tokens are looked for, so a
// TokenExpired event is at most this late.
const SweepInterval = 30 * time.Second

// DenialFlushInterval is how often refused attempts (failed redemptions,
// refused changes) are recorded, aggregated, in the event log.
const DenialFlushInterval = time.Minute

// Config configures a daemon. Only Dir is required.
type Config struct {
	// Dir is the data directory: server certificate, unix socket, NATS store.
	Dir string
	// NATSURL is an external NATS server or cluster ("nats://a,nats://b");
	// "" runs an embedded server with JetStream in <Dir>/nats.
	NATSURL string
	// NATSCreds is a credentials file for NATSURL; optional.
	NATSCreds string
	// Replicas is the stream replica count on an external cluster; 0 means 1.
	Replicas int
	// HTTPSAddress, when set, becomes this member's core.https_address
	// (recorded as a member-local event if it differs). "127.0.0.1:0"
	// picks a free port.
	HTTPSAddress string
	// Member names this instance among those sharing the log: its values
	// of member-local keys (core.https_address, acme.http.port) are its
	// own. "" means NATSName if set, else the name kept in <Dir>/member
	// (made on first start from the host name and a random suffix).
	Member string
	// Sync says when the embedded NATS server syncs JetStream writes to
	// disk; the zero value syncs each one before acknowledging it. It
	// cannot be set with NATSURL (configure the servers themselves).
	Sync SyncPolicy
	// NATSMonitor lists, comma-separated, the monitoring endpoints
	// ("http://host:8222") of the servers of NATSURL, where trustlogd
	// reads whether they sync writes to disk if its account cannot ask
	// them over NATS; optional.
	NATSMonitor string
	// InsecureTLS allows TLS 1.2 clients (TRUSTLOG_INSECURE_TLS). Default: TLS 1.3 only.
	InsecureTLS bool
	// Logger receives the daemon's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// StoreWait bounds how long Start waits for the event stream to answer
	// (0: DefaultStoreWait).
	StoreWait time.Duration
	// HeaderTimeout bounds the TLS handshake and request headers of the
	// HTTPS API (0: DefaultHeaderTimeout); MaxConnsPerSource caps
	// concurrent connections per source address (0: the default).
	HeaderTimeout     time.Duration
	MaxConnsPerSource int
	// MaxUnauthenticatedConns caps the HTTPS connections, from all sources
	// together, on which no request has authenticated yet; a new one over
	// the cap closes the oldest (0: DefaultMaxUnauthenticatedConns).
	MaxUnauthenticatedConns int
	// BodyTimeout and MinBodyRate bound the time to read a request body:
	// BodyTimeout plus its length at MinBodyRate bytes a second; a slower
	// body gets 408 and its connection is closed (0: DefaultBodyTimeout,
	// DefaultMinBodyRate).
	BodyTimeout time.Duration
	MinBodyRate int64
	// SnapshotEvery and SnapshotInterval set the snapshot policy: store the
	// read model once it is SnapshotEvery events past the stored one,
	// checked every SnapshotInterval (0: the defaults).
	SnapshotEvery    uint64
	SnapshotInterval time.Duration
	// ACMEHTTPAddress is where this instance answers ACME HTTP-01
	// challenges on plain HTTP; "" follows the acme.http.port key, "-"
	// turns it off.
	ACMEHTTPAddress string
	// ACMECheckInterval is how often the served certificate is checked for
	// renewal (and it is checked on every acme.* change); 0 means
	// DefaultACMECheckInterval, a negative value no background checks at
	// all (CheckRenewal and the renew endpoint still work).
	ACMECheckInterval time.Duration
	// ACMEHTTPClient reaches the ACME CA; nil is lego's default client,
	// which adds the roots named by LEGO_CA_CERTIFICATES.
	ACMEHTTPClient *http.Client
	// NATSName, NATSCluster and NATSRoutes make the embedded NATS server a
	// member of a JetStream cluster of trustlogd instances: a unique
	// server name, the host:port of its route listener, and the
	// comma-separated route addresses of the members. Use Replicas 3.
	NATSName    string
	NATSCluster string
	NATSRoutes  string
	// NATSClusterSecretFile holds the secret (≥ 32 characters, mode 0600)
	// that the members' routes authenticate with; required with
	// NATSCluster, the same file content on every member.
	NATSClusterSecretFile string
	// NATSListen, if set, makes the embedded NATS server listen on this
	// host:port for other services subscribing to the event stream, with a
	// read-only user whose URL is written to <Dir>/subscriber.url.
	NATSListen string
	// Upstream, if set, puts an HTTP API behind Trustlog (the front door):
	// "http(s)://host:port[/base]" or "unix:/path". Requests for paths the
	// API does not serve go there once authenticated, with the caller's
	// identity in X-Trustlog-* headers.
	Upstream string
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("daemon: data directory is required")
	}
	if c.NATSURL != "" && c.NATSListen != "" {
		return errors.New("daemon: --nats-listen exposes the embedded server; it cannot be used with --nats")
	}
	if c.NATSURL != "" && c.NATSCluster != "" {
		return errors.New("daemon: --nats-cluster clusters the embedded server; it cannot be used with --nats")
	}
	if c.NATSURL == "" && c.NATSCreds != "" {
		return errors.New("daemon: NATS credentials need an external NATS URL")
	}
	if c.NATSURL == "" && c.NATSMonitor != "" {
		return errors.New("daemon: --nats-monitor reads the servers of --nats")
	}
	if err := c.Sync.Validate(); err != nil {
		return fmt.Errorf("daemon: --sync: %w", err)
	}
	if c.NATSURL != "" && !c.Sync.Always() {
		return errors.New("daemon: --sync configures the embedded NATS server; with --nats, set jetstream { sync_interval } in the servers' configuration")
	}
	if c.Member != "" {
		if err := serverinfo.ValidateMemberName(c.Member); err != nil {
			return fmt.Errorf("daemon: --member: %w", err)
		}
	} else if c.NATSName != "" {
		if err := serverinfo.ValidateMemberName(c.NATSName); err != nil {
			return fmt.Errorf("daemon: --nats-name (the member name): %w", err)
		}
	}
	return nil
}

// Daemon is a running trustlogd.
type Daemon struct {
	rotationSeen       string        // the last rotation this instance could not follow (logged once)
	box                *sealing.Box  // the service key, to unseal sensitive configuration
	source             string        // the CloudEvents source of this instance's events
	member             string        // this instance's member name, for member-local keys
	acmeChanged        chan struct{} // an acme.* key changed
	acmeMu             sync.Mutex
	renewMu            sync.Mutex
	acmeBackoff        time.Duration
	acmeFailedFor      string    // the acme.* settings of this instance's last failed renewal
	acmeFailedNext     time.Time // and when that failure's back-off ends
	subscriberPassword string    // the read-only NATS user's password, with NATSListen
	mirrorPassword     string    // the password of the user keeping the subscribers' mirror
	dirLock            *dirLock  // held from Start until Close has stopped everything
	cfg                Config
	log                *slog.Logger
	cert               servedCert
	ns                 *server.Server
	nc                 *nats.Conn
	store              *natsstore.Store
	proj               *projections.Projector
	handler            *service.Service
	sys                *commit.Committer // writes of the daemon itself
	unix               *http.Server
	unixLn             net.Listener
	cancel             context.CancelFunc
	wg                 sync.WaitGroup

	hostname string
	addrs    atomic.Pointer[addrCache]
	httpsGen atomic.Uint64 // moves each time d.https changes

	mu       sync.Mutex
	https    *httpListener
	acmeHTTP *httpListener           // the plain-HTTP ACME challenge listener, if any
	reserved map[string]*reservation // listeners CheckListen bound, by key, for the move
	closed   bool
}

// httpListener is a listener serving HTTP: the HTTPS API, or the plain-HTTP
// ACME challenge listener.
type httpListener struct {
	want  string // the configured address
	addr  string // the address it listens on, normalized
	bound string // the address actually bound
	srv   *http.Server
}

// Start brings a daemon up and returns once it serves: the read model has
// replayed the stream and both listeners accept connections. It locks the
// data directory first, and fails with ErrDirInUse (naming the other
// process) while another trustlogd runs on it. Its last log line,
// "trustlogd ready", says how long the start took: in all, restoring the
// read-model snapshot (snapshot_seq is 0 without one) and replaying the
// events after it.
func Start(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	began := time.Now() // wall-clock timings for the ready line, whatever cfg.Now says
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ACMECheckInterval == 0 {
		cfg.ACMECheckInterval = DefaultACMECheckInterval
	}
	if cfg.StoreWait <= 0 {
		cfg.StoreWait = DefaultStoreWait
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.MaxConnsPerSource <= 0 {
		cfg.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if cfg.MaxUnauthenticatedConns <= 0 {
		cfg.MaxUnauthenticatedConns = DefaultMaxUnauthenticatedConns
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.MinBodyRate <= 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.SnapshotInterval <= 0 {
		cfg.SnapshotInterval = DefaultSnapshotInterval
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, acmeChanged: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: data directory: %w", err)
	}
	if d.dirLock, err = lockDataDir(cfg.Dir); err != nil {
		return nil, err
	}
	pair, created, err := loadOrCreateServerCert(cfg.Dir, cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	d.cert.set(pair)
	if created {
		d.log.Info("generated server certificate", "path", filepath.Join(cfg.Dir, "server.crt"))
	}
	if d.member, err = memberName(cfg); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if err := d.connectNATS(); err != nil {
		return nil, err
	}
	if cfg.NATSURL != "" {
		d.checkExternalSync(ctx)
	}
	if d.store, err = d.openStore(ctx); err != nil {
		return nil, err
	}
	if cfg.NATSListen != "" {
		if err := d.openSubscriberMirror(ctx); err != nil {
			return nil, err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	restoring := time.Now()
	restored := restoreSnapshot(ctx, d.store, d.log)
	restoreTook, fromSeq := time.Since(restoring), uint64(0)
	if restored != nil {
		fromSeq = restored.Seq()
	}
	d.proj = projections.NewProjector(d.store, projections.ProjectorConfig{Logger: d.log, Start: restored})
	d.wg.Go(func() { _ = d.proj.Run(runCtx) })
	syncCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	replaying := time.Now()
	if err := d.proj.Sync(syncCtx); err != nil {
		return nil, fmt.Errorf("daemon: replaying the event stream: %w", err)
	}
	replayTook, replayed := time.Since(replaying), d.proj.Snapshot().Seq()-fromSeq
	key, err := loadOrCreateSealingKey(cfg.Dir, d.proj.Snapshot())
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if d.box, err = sealing.New(key, rand.Reader); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	host, _ := os.Hostname()
	d.hostname = host
	var fallback http.Handler
	if cfg.Upstream != "" {
		if fallback, err = frontdoor.New(cfg.Upstream, d.log); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	svc := service.Config{
		Sync:             d.Sync,
		RenewCertificate: func(ctx context.Context) error { return d.CheckRenewal(ctx, "requested") },
		Fallback:         fallback,
		Feed:             d.store,
		SealingKey:       key,
		Stream:           d.store,
		Model:            d.proj,
		Log:              d.store,
		Host:             d,
		Source:           "/trustlog/" + host,
		Now:              cfg.Now,
		Logger:           d.log,
	}
	if d.handler, err = service.New(svc); err != nil {
		return nil, err
	}
	d.sys = &commit.Committer{Model: d.proj, Log: d.store, Now: cfg.Now, NewID: newID, Source: svc.Source}
	d.source = svc.Source
	if cfg.HTTPSAddress != "" {
		if err := d.setHTTPSAddress(ctx, cfg.HTTPSAddress); err != nil {
			return nil, err
		}
	}
	if err := d.syncCA(ctx); err != nil {
		return nil, err
	}
	crls := &crlWatcher{d: d}
	crls.check(ctx)
	if err := d.listenUnix(); err != nil {
		return nil, err
	}
	if err := d.reconcileHTTPS(); err != nil {
		return nil, err
	}
	if err := d.reconcileACMEHTTP(); err != nil {
		d.log.Warn("ACME challenge listener not started", "err", err)
	}
	d.wg.Go(func() { d.followConfig(runCtx) })
	d.wg.Go(func() { d.handler.RunSweeper(runCtx, SweepInterval) })
	d.wg.Go(func() { crls.run(runCtx) })
	d.wg.Go(func() { d.runSnapshots(runCtx) })
	d.wg.Go(func() { d.handler.RunDenials(runCtx, DenialFlushInterval) })
	if cfg.ACMECheckInterval > 0 {
		d.wg.Go(func() { d.runACME(runCtx) })
	}
	d.log.Info("trustlogd ready",
		"https", d.HTTPSAddr(), "unix", d.UnixSocket(), "member", d.member,
		"fingerprint", d.Fingerprint(), "events", d.proj.Snapshot().Seq(),
		"trusted_certificates", d.proj.Snapshot().NumCertificates(),
		"startup", time.Since(began).Round(time.Microsecond),
		"snapshot_seq", fromSeq, "snapshot_restore", restoreTook.Round(time.Microsecond),
		"replayed", replayed, "replay", replayTook.Round(time.Microsecond))
	return d, nil
}

func (d *Daemon) connectNATS() error {
	if d.cfg.NATSURL != "" {
		// No reconnect buffer: a publish while disconnected fails at once,
		// so a write answered 503 is never sent after the reconnection.
		opts := []nats.Option{nats.Name("trustlogd"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)}
		if d.cfg.NATSCreds != "" {
			opts = append(opts, nats.UserCredentials(d.cfg.NATSCreds))
		}
		nc, err := nats.Connect(d.cfg.NATSURL, opts...)
		if err != nil {
			return fmt.Errorf("daemon: connect to NATS: %w", err)
		}
		d.nc = nc
		return nil
	}
	sopts, copts, err := d.embeddedOptions()
	if err != nil {
		return err
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return fmt.Errorf("daemon: embedded NATS: %w", err)
	}
	d.ns = ns
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		return errors.New("daemon: embedded NATS did not start")
	}
	if d.cfg.NATSListen != "" {
		if err := d.writeSubscriberURL(); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.log.Info("NATS listening for subscribers", "address", ns.Addr().String(), "credentials", filepath.Join(d.cfg.Dir, SubscriberURLFile))
	}
	copts[0] = nats.InProcessServer(ns)
	nc, err := nats.Connect("", copts...)
	if err != nil {
		return fmt.Errorf("daemon: connect to embedded NATS: %w", err)
	}
	d.nc = nc
	return nil
}

// embeddedOptions returns the options of the embedded NATS server (its
// cluster and listener too, if configured) and of the daemon's
// connection to it.
func (d *Daemon) embeddedOptions() (*server.Options, []nats.Option, error) {
	sopts := &server.Options{
		ServerName: "trustlog",
		DontListen: true,
		JetStream:  true,
		StoreDir:   filepath.Join(d.cfg.Dir, "nats"),
		NoSigs:     true,
		NoLog:      true,
		// Acknowledged means on disk (D6): each write is synced before
		// the server acknowledges it, unless --sync says otherwise.
		SyncAlways:   d.cfg.Sync.Always(),
		SyncInterval: d.cfg.Sync.Interval,
		// No cap on the consumers of a stream unless its account sets one:
		// the daemon's own consumers never wait for a free slot.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
	}
	copts := []nats.Option{nats.InProcessServer(nil), nats.Name("trustlogd")} // the server is filled in once it runs
	if d.cfg.NATSCluster != "" {
		if err := d.clusterOptions(sopts); err != nil {
			return nil, nil, fmt.Errorf("daemon: %w", err)
		}
	}
	listen := d.cfg.NATSListen
	if listen == "" && d.cfg.NATSCluster != "" {
		// A clustered server runs its client accept loop (its start-up
		// waits for it); bind it to loopback, behind the same users.
		listen = "127.0.0.1:0"
	}
	if listen != "" {
		pw, err := d.listenOptions(sopts, listen, d.cfg.NATSListen != "")
		if err != nil {
			return nil, nil, fmt.Errorf("daemon: %w", err)
		}
		copts = append(copts, nats.UserInfo(natsAdminUser, pw))
	}
	return sopts, copts, nil
}

// setHTTPSAddress records addr as this member's core.https_address unless
// that is already its value. The address is member-local: other
// instances sharing the log keep theirs. An address this machine cannot
// listen on is refused before anything is recorded.
func (d *Daemon) setHTTPSAddress(ctx context.Context, addr string) error {
	norm, err := serverinfo.NormalizeListenAddress(addr)
	if err != nil {
		return fmt.Errorf("daemon: --https-address: %w", err)
	}
	if err := d.CheckListen(ctx, serverinfo.KeyHTTPSAddress, norm); err != nil {
		return fmt.Errorf("daemon: --https-address: %w", err)
	}
	_, err = d.sys.Do(ctx, systemActor, func(m *projections.Model) ([]events.Payload, error) {
		if m.MemberConfigValue(d.member, serverinfo.KeyHTTPSAddress) == addr {
			return nil, nil
		}
		return []events.Payload{events.ConfigMemberChanged{Member: d.member, Key: serverinfo.KeyHTTPSAddress, Value: addr}}, nil
	})
	if err != nil {
		return fmt.Errorf("daemon: recording core.https_address: %w", err)
	}
	return nil
}

func (d *Daemon) listenUnix() error {
	path := d.UnixSocket()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("daemon: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("daemon: unix socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("daemon: unix socket: %w", err)
	}
	d.unixLn = ln
	d.unix = &http.Server{
		Handler:           d.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return authn.WithLocalUser(ctx, peerUser(c))
		},
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	srv := d.unix // Close may clear the field while Serve starts
	d.wg.Go(func() { _ = srv.Serve(ln) })
	return nil
}

func (d *Daemon) tlsConfig() *tls.Config {
	cfg := ServerTLSConfig(d.cfg.InsecureTLS)
	cfg.ClientAuth = tls.RequestClientCert
	cfg.GetCertificate = d.cert.getCertificate
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg
}

// reconcileHTTPS makes the HTTPS listener match this member's
// core.https_address: it binds the new address (or takes the listener
// CheckListen reserved for it) before closing the old one, so an address
// that cannot be bound leaves the API reachable where it was. A new value
// naming the address already bound ("127.0.0.1" for 127.0.0.1:8443)
// moves nothing.
func (d *Daemon) reconcileHTTPS() error {
	want := d.proj.Snapshot().MemberConfigValue(d.member, serverinfo.KeyHTTPSAddress)
	if want == "" {
		want = serverinfo.DefaultHTTPSAddress
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || (d.https != nil && d.https.want == want) {
		return nil
	}
	addr, err := serverinfo.NormalizeListenAddress(want)
	if err != nil {
		return fmt.Errorf("daemon: core.https_address: %w", err)
	}
	if d.listeningOn(serverinfo.KeyHTTPSAddress, addr) {
		d.https.want = want
		return nil
	}
	ln, err := d.listen(serverinfo.KeyHTTPSAddress, addr)
	if err != nil {
		return fmt.Errorf("daemon: core.https_address: %w", err)
	}
	srv := &http.Server{
		Handler:           bodyDeadline(d.handler, d.cfg.BodyTimeout, d.cfg.MinBodyRate),
		TLSConfig:         d.tlsConfig(),
		ReadHeaderTimeout: d.cfg.HeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc := limitedOf(c); lc != nil {
				return authn.WithConnVouch(ctx, lc.vouch)
			}
			return authn.WithConnMemo(ctx)
		},
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	ln = newConnLimiter(ln, d.cfg.MaxConnsPerSource, d.cfg.MaxUnauthenticatedConns, d.log)
	old := d.https
	d.https = &httpListener{want: want, addr: addr, bound: ln.Addr().String(), srv: srv}
	d.httpsGen.Add(1)
	d.wg.Go(func() { _ = srv.ServeTLS(ln, "", "") })
	d.log.Info("listening", "https", d.https.bound)
	if old != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = old.srv.Shutdown(ctx)
	}
	return nil
}

// followConfig moves the HTTPS and ACME challenge listeners whenever
// this member's core.https_address or acme.http.port changes. A move that
// fails is tried again on later events, and logged once per error.
func (d *Daemon) followConfig(ctx context.Context) {
	acmeSeen := d.acmeKeys(d.proj.Snapshot())
	var httpsErr, acmeErr string
	for {
		seq := d.proj.Snapshot().Seq()
		if err := d.proj.WaitFor(ctx, seq+1); err != nil {
			return
		}
		if err := d.reconcileHTTPS(); err != nil && err.Error() != httpsErr {
			d.log.Error("HTTPS listener not moved", "err", err)
			httpsErr = err.Error()
		} else if err == nil {
			httpsErr = ""
		}
		if err := d.reconcileACMEHTTP(); err != nil && err.Error() != acmeErr {
			d.log.Warn("ACME challenge listener not moved", "err", err)
			acmeErr = err.Error()
		} else if err == nil {
			acmeErr = ""
		}
		d.followRotation()
		if k := d.acmeKeys(d.proj.Snapshot()); k != acmeSeen {
			acmeSeen = k
			select {
			case d.acmeChanged <- struct{}{}:
			default:
			}
		}
	}
}

// HTTPSAddr returns the address the HTTPS listener is bound to.
func (d *Daemon) HTTPSAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.https == nil {
		return ""
	}
	return d.https.bound
}

// UnixSocket returns the path of the unix socket.
func (d *Daemon) UnixSocket() string { return filepath.Join(d.cfg.Dir, "unix.socket") }

// Fingerprint returns the fingerprint of the served certificate.
func (d *Daemon) Fingerprint() string { return d.cert.cur.Load().fingerprint }

// Store returns the event store, for tools and tests that inspect the stream.
func (d *Daemon) Store() *natsstore.Store { return d.store }

// Sync waits until the read model has applied every event stored when it
// was called.
func (d *Daemon) Sync(ctx context.Context) error { return d.proj.Sync(ctx) }

// WaitFor blocks until the read model has applied sequence seq, or ctx ends.
func (d *Daemon) WaitFor(ctx context.Context, seq uint64) error { return d.proj.WaitFor(ctx, seq) }

// Model returns the current read model.
func (d *Daemon) Model() *projections.Model { return d.proj.Snapshot() }

// Handler returns the API handler, as served on both listeners.
func (d *Daemon) Handler() http.Handler { return d.handler }

// Service returns the API with its background work, for tests that drive
// the token sweeper with their own clock.
func (d *Daemon) Service() *service.Service { return d.handler }

// Certificate implements serverinfo.Host.
func (d *Daemon) Certificate() (string, string) {
	c := d.cert.cur.Load()
	return c.pem, c.fingerprint
}

// Addresses implements serverinfo.Host: the bound HTTPS address, or every
// global unicast address of the machine when bound to a wildcard address.
// The list is shared: callers must not modify it. It is worked out again
// when the listener moves and, for a wildcard address (whose answer comes
// from the machine's interfaces), at most every addressesTTL, not on every
// GET /1.0.
func (d *Daemon) Addresses() []string {
	// The generation moves whenever the listener does; reading it needs no
	// lock, so a GET /1.0 does not queue behind other requests here.
	gen := d.httpsGen.Load()
	c := d.addrs.Load()
	if c != nil && c.gen == gen && c.fixed {
		return c.list
	}
	now := time.Now()
	if c != nil && c.gen == gen && now.Sub(c.at) < addressesTTL {
		return c.list
	}
	bound := d.HTTPSAddr()
	c = &addrCache{gen: gen, at: now, list: listenAddresses(bound)}
	host, _, _ := net.SplitHostPort(bound)
	ip := net.ParseIP(host)
	c.fixed = host != "" && (ip == nil || !ip.IsUnspecified())
	d.addrs.Store(c)
	return c.list
}

// addressesTTL bounds how long the interface addresses of a wildcard
// listener are remembered.
const addressesTTL = 10 * time.Second

// addrCache is Addresses' last answer.
type addrCache struct {
	gen   uint64 // of the listener it was worked out for
	at    time.Time
	fixed bool // bound to one address: the answer never changes
	list  []string
}

// ServerName implements serverinfo.Host: the host name, read at start.
func (d *Daemon) ServerName() string { return d.hostname }

// Member implements serverinfo.MemberHost: this instance's member name.
func (d *Daemon) Member() string { return d.member }

// Close stops the listeners, the projector and NATS, and then unlocks the
// data directory. It is safe to call more than once.
func (d *Daemon) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.mu.Lock()
	d.closed = true
	if d.https != nil {
		_ = d.https.srv.Shutdown(ctx)
		d.https = nil
		d.httpsGen.Add(1)
	}
	if d.acmeHTTP != nil {
		_ = d.acmeHTTP.srv.Shutdown(ctx)
		d.acmeHTTP = nil
	}
	for key := range d.reserved {
		d.dropReserved(key)
	}
	d.mu.Unlock()
	if d.unix != nil {
		_ = d.unix.Shutdown(ctx)
		d.unix = nil
	}
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	if d.nc != nil {
		d.nc.Close()
		d.nc = nil
	}
	if d.ns != nil {
		d.ns.Shutdown()
		d.ns.WaitForShutdown()
		d.ns = nil
	}
	d.dirLock.release()
	d.dirLock = nil
	return nil
}

func newID() string { return uuid.NewString() }

// listenAddresses expands a bound address as LXD's ListenAddresses does:
// a wildcard host becomes every global unicast address of the machine
// (IPv4 only for 0.0.0.0).
func listenAddresses(bound string) []string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if host != "" && ip != nil && !ip.IsUnspecified() {
		return []string{bound}
	}
	if host != "" && ip == nil {
		return []string{bound}
	}
	v4only := ip != nil && ip.To4() != nil
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() || (v4only && n.IP.To4() == nil) {
			continue
		}
		out = append(out, net.JoinHostPort(n.IP.String(), port))
	}
	return out
}

// DefaultStoreWait bounds how long Start waits for the event stream to
// answer (a cluster electing its leaders, members still joining) unless
// Config.StoreWait says otherwise; past it, Start fails rather than hang.
const DefaultStoreWait = 5 * time.Minute

// openStore opens the event stream, waiting at most Config.StoreWait, and
// says every 15 s that it is still waiting.
func (d *Daemon) openStore(ctx context.Context) (*natsstore.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.StoreWait)
	defer cancel()
	start := time.Now()
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(15 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				d.log.Warn("waiting for the event stream to answer (a cluster electing its leaders, or members not joined yet)",
					"waited", time.Since(start).Round(time.Second), "limit", d.cfg.StoreWait)
			}
		}
	}()
	st, err := natsstore.Open(ctx, d.nc, natsstore.Config{Replicas: d.cfg.Replicas})
	if err != nil {
		return nil, fmt.Errorf("daemon: the event stream did not answer within %s: %w", time.Since(start).Round(time.Second), err)
	}
	return st, nil
}
