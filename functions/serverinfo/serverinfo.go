// Package serverinfo serves the root of the API: GET /, GET /1.0 and the
// server configuration changes of PUT and PATCH /1.0.
package serverinfo

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/acme"
	"github.com/trustlog/trustlog/functions/api"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/commit"
	"github.com/trustlog/trustlog/functions/gate"
	"github.com/trustlog/trustlog/functions/oidc"
	"github.com/trustlog/trustlog/functions/pki"
	"github.com/trustlog/trustlog/functions/response"
	"github.com/trustlog/trustlog/projections"
)

// Version is the server_version Trustlog reports.
const Version = "0.1.0"

// Extensions lists the API extensions Trustlog implements, in the order
// upstream introduced them. Clients probe for them before using a feature.
var Extensions = []string{
	"certificate_token",
	"certificate_update",
	"certificate_self_renewal",
	"certificate_project",
	"certificate_description",
	"auth_user",
	"explicit_trust_token",
	"oidc",
	"oidc_groups_claim",
	"oidc_scopes",
	pki.Extension,
	metadataExtension,
}

// Host is what the serving host knows about itself. Implementations must be
// safe for concurrent use.
type Host interface {
	// Certificate returns the PEM of the certificate currently served on the
	// network, and its fingerprint.
	Certificate() (pemText, fingerprint string)
	// Addresses returns the "host:port" addresses the API listens on.
	Addresses() []string
	// ServerName returns the name of this server (its host name).
	ServerName() string
}

// MemberHost is a Host that is one member of several instances sharing
// the log. GET /1.0 shows it its own values of member-local keys
// (MemberKey), and PUT and PATCH /1.0 record those keys for it, or for the
// member named by ?target=. Without it, member-local keys are shared, as
// every key is.
type MemberHost interface {
	Host
	// Member returns the name of this instance's member; it never changes.
	Member() string
}

// ListenChecker is a Host that serves on listeners of its own, whose
// addresses are member-local keys: core.https_address and acme.http.port.
// A change of this member's value is checked with it before it is
// recorded, so an address the host cannot listen on (in use, not on this
// machine, a host name that does not resolve) is refused with 400 and
// nothing is appended. Hosts without listeners (a Lambda function) do not
// implement it.
type ListenChecker interface {
	Host
	// CheckListen returns an error, in words for the admin who asked, if
	// this host cannot listen on addr (host:port) for key. It may keep
	// the listener it bound, for the move the recorded change then makes.
	// It is safe for concurrent use.
	CheckListen(ctx context.Context, key, addr string) error
}

// Sensitive is what GET /1.0 shows in place of a sealed value; a PUT that
// sends it back leaves the value as it is.
const Sensitive = "SENSITIVE"

// SensitiveKey reports whether a key's value is sealed under the service
// key before it is recorded (secrets such as acme.eab.hmac).
func SensitiveKey(k string) bool { return k == acme.KeyEABHMAC }

// Sealer seals a sensitive configuration value for the log (the service
// key's box, with the key name as additional data).
type Sealer func(key, value string) (string, error)

// Discoverer checks OpenID Connect issuers (package oidc implements it).
type Discoverer interface {
	// Discover checks that issuer answers discovery for exactly itself.
	Discover(ctx context.Context, issuer string) error
	// Ready reports whether the issuer configured in m is reachable, so
	// that "oidc" is offered in auth_methods.
	Ready(ctx context.Context, m *projections.Model) bool
}

// Handler serves the server object.
type Handler struct {
	model     commit.ReadModel
	committer *commit.Committer
	host      Host
	log       *slog.Logger
	oidc      Discoverer
	seal      Sealer
	member    string // this instance's member, "" if its Host is no MemberHost
	replies   replyCache
}

// replyCache keeps the encoded GET /1.0 replies of the current model, one
// per distinct view of it (which caller, which server certificate and
// addresses, which project): clients ask for /1.0 before almost every
// command, and encoding it costs more than the rest of the request.
//
// Readers take no lock: the entries of one model sequence are an
// immutable table behind an atomic pointer, and put replaces the table
// with a copy holding one more entry. A read lock here had every request
// write the lock's reader count, one cache line that the processors
// serving requests passed between them.
type replyCache struct {
	mu    sync.Mutex // serialises put
	table atomic.Pointer[replyTable]
}

// replyTable is the cache's content at one model sequence; never changed
// once published.
type replyTable struct {
	seq     uint64
	entries map[replyKey]replyEntry
}

// maxReplies bounds the cache; past it, the cache starts again empty.
const maxReplies = 1024

// replyKey is everything a GET /1.0 reply depends on, but the addresses.
type replyKey struct {
	seq                                             uint64
	trusted, admin, clientCert, oidcReady           bool
	name, method, fingerprint, server, proj, member string
}

type replyEntry struct {
	addresses []string
	reply     response.Reply
}

func (c *replyCache) get(k replyKey, addresses []string) (response.Reply, bool) {
	t := c.table.Load()
	if t == nil || t.seq != k.seq {
		return response.Reply{}, false
	}
	e, ok := t.entries[k]
	if !ok || !slices.Equal(e.addresses, addresses) {
		return response.Reply{}, false
	}
	return e.reply, true
}

func (c *replyCache) put(k replyKey, addresses []string, rp response.Reply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.table.Load()
	if old != nil && k.seq < old.seq {
		return // the model has moved on
	}
	t := &replyTable{seq: k.seq, entries: map[replyKey]replyEntry{}}
	if old != nil && k.seq == old.seq && len(old.entries) < maxReplies {
		t.entries = maps.Clone(old.entries)
	}
	t.entries[k] = replyEntry{addresses: addresses, reply: rp}
	c.table.Store(t)
}

// WithSealing makes h seal the values of sensitive keys with seal; without
// it, setting a sensitive key is refused.
func (h *Handler) WithSealing(seal Sealer) *Handler {
	h.seal = seal
	return h
}

// WithOIDC makes h validate oidc.issuer by discovery with d and offer
// "oidc" in auth_methods while the configured issuer is reachable.
func (h *Handler) WithOIDC(d Discoverer) *Handler {
	h.oidc = d
	return h
}

// New returns a Handler.
func New(model commit.ReadModel, c *commit.Committer, host Host, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{model: model, committer: c, host: host, log: log}
	if mh, ok := host.(MemberHost); ok {
		h.member = mh.Member()
	}
	return h
}

// Routes returns the routes of the handler.
func (h *Handler) Routes() []gate.Route {
	return []gate.Route{
		{Method: "GET", Path: "/{$}", Untrusted: true, Ungranted: true, Handler: http.HandlerFunc(h.root)},
		{Method: "GET", Path: "/1.0", Untrusted: true, Ungranted: true, Handler: http.HandlerFunc(h.get)},
		{Method: "GET", Path: "/1.0/{$}", Untrusted: true, Ungranted: true, Handler: http.HandlerFunc(h.get)},
		{Method: "PUT", Path: "/1.0", Admin: true, NotAdmin: errRestricted, MaxBody: maxConfigBody, Handler: http.HandlerFunc(h.put)},
		{Method: "PATCH", Path: "/1.0", Admin: true, NotAdmin: errRestricted, MaxBody: maxConfigBody, Handler: http.HandlerFunc(h.patch)},
		metadataRoute,
	}
}

// rootReply is GET /: the API versions served.
var rootReply = response.SyncReply([]string{"/1.0"}, nil)

func (h *Handler) root(w http.ResponseWriter, r *http.Request) {
	rootReply.Write(w)
}

// visibleConfig is the configuration a caller may see, as member sees it
// (its own values of member-local keys): all of it for an admin, only
// user.ui.* keys for anyone else (as Incus).
func visibleConfig(m *projections.Model, id authn.Identity, member string) map[string]string {
	cfg := m.MemberConfig(member)
	for k := range cfg {
		if SensitiveKey(k) {
			cfg[k] = Sensitive // sealed in the log, never shown again
		}
	}
	if id.Admin() {
		return cfg
	}
	maps.DeleteFunc(cfg, func(k, _ string) bool { return !strings.HasPrefix(k, "user.ui.") })
	return cfg
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	m := h.model.Snapshot()
	oidcReady := h.oidc != nil && h.oidc.Ready(r.Context(), m)
	key := replyKey{seq: m.Seq(), trusted: id.Trusted, admin: id.Admin(), clientCert: len(authn.PeerCertificates(r)) > 0,
		oidcReady: oidcReady, name: id.Name, method: id.Method, member: h.member}
	var addresses []string
	var certPEM string
	if id.Trusted {
		// Only a trusted caller sees the environment, or another member's
		// configuration.
		certPEM, key.fingerprint = h.host.Certificate()
		key.server, addresses = h.host.ServerName(), nonNil(h.host.Addresses())
		if r.URL.RawQuery != "" { // parsing an empty query still allocates
			q := r.URL.Query()
			key.proj = q.Get("project")
			member, err := h.target(m, q.Get("target"))
			if err != nil {
				response.Fail(w, r, h.log, err)
				return
			}
			key.member = member
		}
	}
	if rp, ok := h.replies.get(key, addresses); ok {
		rp.Write(w)
		return
	}
	cfg := visibleConfig(m, id, key.member)
	srv := api.Server{
		Config:            cfg,
		APIExtensions:     Extensions,
		APIStatus:         "stable",
		APIVersion:        "1.0",
		Auth:              "untrusted",
		AuthMethods:       []string{"tls"},
		ClientCertificate: len(authn.PeerCertificates(r)) > 0,
	}
	if oidcReady {
		srv.AuthMethods = append(srv.AuthMethods, "oidc")
	}
	if id.Trusted {
		srv.Auth = "trusted"
		srv.AuthUserName = id.Name
		srv.AuthUserMethod = id.Method
		srv.Environment = environment(key, certPEM, addresses)
	}
	rp := response.SyncReply(srv, cfg)
	h.replies.put(key, addresses, rp)
	rp.Write(w)
}

// environment is the server environment a trusted caller sees.
func environment(k replyKey, certPEM string, addresses []string) *api.ServerEnvironment {
	project := k.proj
	if project == "" {
		project = "default"
	}
	return &api.ServerEnvironment{
		Addresses:               addresses,
		Architectures:           []string{},
		Certificate:             certPEM,
		CertificateFingerprint:  k.fingerprint,
		KernelFeatures:          map[string]string{},
		LXCFeatures:             map[string]string{},
		OSName:                  "trustlog",
		Project:                 project,
		Server:                  "trustlog",
		ServerEventMode:         "full-mesh",
		ServerName:              k.server,
		ServerPid:               os.Getpid(),
		ServerVersion:           Version,
		StorageSupportedDrivers: []api.StorageDriver{},
	}
}

// errRestricted refuses a configuration change by a caller without full
// access, in Incus's words.
var errRestricted = response.Forbidden("Certificate is restricted")

// maxConfigBody caps a PUT or PATCH of the server configuration: a few
// dozen keys with short values need a few kilobytes.
const maxConfigBody = 256 << 10

func (h *Handler) put(w http.ResponseWriter, r *http.Request) { h.update(w, r, false) }

func (h *Handler) patch(w http.ResponseWriter, r *http.Request) { h.update(w, r, true) }

// update applies PUT (replace the whole configuration) or PATCH (merge).
// Every changed key becomes one ConfigChanged event; all of them are
// appended atomically or not at all.
func (h *Handler) update(w http.ResponseWriter, r *http.Request, merge bool) {
	id := authn.FromContext(r.Context())
	if !id.Admin() {
		response.Fail(w, r, h.log, errRestricted)
		return
	}
	var body api.ServerPut
	if err := response.DecodeJSON(w, r, &body); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	snap := h.model.Snapshot()
	member, err := h.target(snap, r.URL.Query().Get("target"))
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	cur := snap.MemberConfig(member)
	if err := response.CheckETag(r, visibleConfig(snap, id, member)); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	if err := h.sealRequest(cur, body.Config); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	// A new OIDC issuer must answer discovery before it is recorded. The
	// check runs before the write (it may take seconds), on the value the
	// request asks for.
	if issuer, ok := body.Config[oidc.KeyIssuer]; ok && issuer != "" && issuer != cur[oidc.KeyIssuer] && h.oidc != nil {
		if err := validateIssuer(issuer); err != nil {
			response.Fail(w, r, h.log, response.BadRequest(fmt.Sprintf("Invalid config: %s: %v", oidc.KeyIssuer, err)))
			return
		}
		if err := h.oidc.Discover(r.Context(), issuer); err != nil {
			response.Fail(w, r, h.log, response.BadRequest(fmt.Sprintf("Invalid config: %s: %v", oidc.KeyIssuer, err)))
			return
		}
	}
	if err := h.checkListeners(r.Context(), snap, member, body.Config, merge); err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	_, err = h.committer.Do(r.Context(), id.Actor(), func(m *projections.Model) ([]events.Payload, error) {
		return configChanges(m, member, body.Config, merge)
	})
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	response.EmptySync(w)
}

// listenKeys are the keys whose value is where this host listens.
var listenKeys = []string{KeyHTTPSAddress, acme.KeyHTTPPort}

// checkListeners asks a ListenChecker host whether it can listen where a
// request would move its listeners: the change's effect on member, if
// member is this instance's. An invalid request is left to
// configChanges, which says what is wrong with it.
func (h *Handler) checkListeners(ctx context.Context, m *projections.Model, member string, req map[string]string, merge bool) error {
	lc, ok := h.host.(ListenChecker)
	if !ok || member != h.member {
		return nil
	}
	changes, err := configChanges(m, member, maps.Clone(req), merge)
	if err != nil {
		return nil
	}
	for _, p := range changes {
		var key, value string
		switch e := p.(type) {
		case events.ConfigMemberChanged:
			key, value = e.Key, e.Value
			if value == "" {
				value = m.ConfigValue(key) // the member follows the shared value again
			}
		case events.ConfigChanged:
			key, value = e.Key, e.Value
		}
		if !slices.Contains(listenKeys, key) {
			continue
		}
		addr, err := listenAddress(key, value)
		if err != nil || addr == "" {
			continue
		}
		if err := lc.CheckListen(ctx, key, addr); err != nil {
			return response.BadRequest(fmt.Sprintf("Invalid config: %s: %v", key, err))
		}
	}
	return nil
}

// listenAddress is the host:port a listener key's value listens on; ""
// for an unset acme.http.port (no listener).
func listenAddress(key, value string) (string, error) {
	switch {
	case key == KeyHTTPSAddress && value == "":
		return DefaultHTTPSAddress, nil
	case key == KeyHTTPSAddress:
		return NormalizeListenAddress(value)
	case value == "":
		return "", nil
	}
	return acme.ListenAddress(value)
}

// sealRequest replaces, in req, the values of sensitive keys: SENSITIVE
// (sent back from GET /1.0) by the sealed value in force, a new value by
// its sealed form. Validation has seen the plain value first.
func (h *Handler) sealRequest(cur, req map[string]string) error {
	for k, v := range req {
		if !SensitiveKey(k) || v == "" {
			continue
		}
		if v == Sensitive {
			req[k] = cur[k]
			continue
		}
		if err := ValidateKey(k, v); err != nil {
			return response.BadRequest(fmt.Sprintf("Invalid config: %v", err))
		}
		if h.seal == nil {
			return response.BadRequest(fmt.Sprintf("Invalid config: %s can only be set on a host with a sealing key", k))
		}
		sealed, err := h.seal(k, v)
		if err != nil {
			return err
		}
		req[k] = sealed
	}
	return nil
}

// target resolves the member a request is about: the one named by
// ?target=, else this instance's own. A target must be this instance's
// member or one the log knows (it has a value of its own).
func (h *Handler) target(m *projections.Model, target string) (string, error) {
	if target == "" || target == h.member {
		return h.member, nil
	}
	if err := ValidateMemberName(target); err != nil {
		return "", response.BadRequest(fmt.Sprintf("Invalid target: %v", err))
	}
	if !m.HasMember(target) {
		return "", response.NotFound(fmt.Sprintf("Cluster member %q not found", target))
	}
	return target, nil
}

// configChanges validates the requested configuration against the one
// member sees and returns one event per changed key, sorted by key: a
// member-local key becomes a ConfigMemberChanged for member (when there
// is one), any other key a ConfigChanged.
func configChanges(m *projections.Model, member string, req map[string]string, merge bool) ([]events.Payload, error) {
	cur := m.MemberConfig(member)
	for k := range req {
		// A key named in the request is refused when this server does not
		// know it, even to unset it (as LXD), unless the configuration
		// holds it already (recorded by a newer version, say).
		if _, held := cur[k]; !held {
			if err := ValidateKey(k, ""); err != nil {
				return nil, response.BadRequest(fmt.Sprintf("Invalid config: %v", err))
			}
		}
	}
	next := map[string]string{}
	if merge {
		maps.Copy(next, cur)
	}
	for k, v := range req {
		next[k] = v
	}
	var out []events.Payload
	keys := slices.Sorted(maps.Keys(joinKeys(cur, next)))
	for _, k := range keys {
		old, nv := cur[k], next[k]
		if old == nv {
			continue
		}
		if SensitiveKey(k) && nv != "" {
			// Sealed by sealRequest after validation.
			out = append(out, events.ConfigChanged{Key: k, Value: nv})
			continue
		}
		if err := ValidateKey(k, nv); err != nil {
			return nil, response.BadRequest(fmt.Sprintf("Invalid config: %v", err))
		}
		if member != "" && MemberKey(k) {
			if _, own := m.MemberOwnConfig(member)[k]; nv == "" && !own {
				continue // the shared value it shows is not the member's to unset
			}
			out = append(out, events.ConfigMemberChanged{Member: member, Key: k, Value: nv})
			continue
		}
		out = append(out, events.ConfigChanged{Key: k, Value: nv})
	}
	if err := validateTogether(next); err != nil {
		return nil, response.BadRequest(fmt.Sprintf("Invalid config: %v", err))
	}
	return out, nil
}

func joinKeys(a, b map[string]string) map[string]struct{} {
	out := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
