package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/functions/authn"
	"github.com/trustlog/trustlog/functions/response"
)

// Event types of /1.0/events, as LXD and Incus name them. Trustlog emits
// lifecycle events; the others are accepted and stay quiet.
var eventTypes = []string{"operation", "logging", "lifecycle"}

// Event is one message of /1.0/events (the upstream api.Event shape).
type Event struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Metadata  json.RawMessage `json:"metadata"`
	Location  string          `json:"location,omitempty"`
	Project   string          `json:"project,omitempty"`
}

// Lifecycle is the metadata of a lifecycle event (api.EventLifecycle).
type Lifecycle struct {
	Action    string         `json:"action"`
	Source    string         `json:"source"`
	Context   map[string]any `json:"context,omitempty"`
	Requestor *Requestor     `json:"requestor,omitempty"`
	Name      string         `json:"name,omitempty"`
	Project   string         `json:"project,omitempty"`
}

// Requestor is who caused a lifecycle event.
type Requestor struct {
	Username string `json:"username"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
}

// LifecycleOf maps a stored event to its lifecycle event, if it has one.
// Certificate actions are LXD's and Incus's; tokens, identities and PKI
// use the same shape with Trustlog's action names. Configuration events
// carry the key, never the value.
func LifecycleOf(env events.Envelope, p events.Payload) (Lifecycle, bool) {
	l := Lifecycle{Requestor: &Requestor{Username: env.ActorName, Protocol: env.ActorMethod, Address: env.ActorAddress}}
	switch e := p.(type) {
	case *events.CertificateTrusted:
		l.Action, l.Source, l.Name = "certificate-created", "/1.0/certificates/"+e.Fingerprint, e.Name
		l.Context = map[string]any{"type": e.Type, "restricted": e.Restricted, "projects": e.Projects}
	case *events.CertificateUpdated:
		l.Action, l.Source, l.Name = "certificate-updated", "/1.0/certificates/"+e.Fingerprint, e.Name
		l.Context = map[string]any{"restricted": e.Restricted, "projects": e.Projects}
		if e.NewFingerprint != "" && e.NewFingerprint != e.Fingerprint {
			l.Context["new_fingerprint"] = e.NewFingerprint
		}
	case *events.CertificateRemoved:
		l.Action, l.Source, l.Name = "certificate-deleted", "/1.0/certificates/"+e.Fingerprint, e.Name
	case *events.ConfigChanged:
		l.Action, l.Source, l.Context = "config-updated", "/1.0", map[string]any{"key": e.Key}
	case *events.TokenIssued:
		l.Action, l.Source, l.Name = "token-created", "/1.0/operations/"+e.ID, e.Name
	case *events.TokenRedeemed:
		l.Action, l.Source, l.Name = "token-redeemed", "/1.0/operations/"+e.ID, e.Name
		l.Context = map[string]any{"fingerprint": e.Fingerprint}
	case *events.TokenRevoked:
		l.Action, l.Source, l.Name = "token-revoked", "/1.0/operations/"+e.ID, e.Name
	case *events.TokenExpired:
		l.Action, l.Source, l.Name = "token-expired", "/1.0/operations/"+e.ID, e.Name
	case *events.IdentityCreated:
		l.Action, l.Source, l.Name = "identity-created", "/1.0/auth/identities/"+e.AuthMethod+"/"+e.ID, e.Name
	case *events.IdentityGranted:
		l.Action, l.Source, l.Name = "identity-updated", "/1.0/auth/identities/"+e.ID, e.Name
		l.Context = map[string]any{"access": e.Access, "projects": e.Projects}
	case *events.IdentityActivated:
		l.Action, l.Source, l.Name = "identity-updated", "/1.0/auth/identities/tls/"+e.ID, e.Name
		l.Context = map[string]any{"fingerprint": e.Fingerprint}
	case *events.IdentityRemoved:
		l.Action, l.Source, l.Name = "identity-deleted", "/1.0/auth/identities/"+e.ID, e.Name
	case *events.CAChanged:
		l.Action, l.Source = "trustlog-ca-updated", "/1.0/trustlog/pki/ca"
		l.Context = map[string]any{"fingerprint": e.Fingerprint}
	case *events.CRLUpdated:
		l.Action, l.Source = "trustlog-crl-updated", "/1.0/trustlog/pki/crl"
		l.Context = map[string]any{"number": e.Number, "revoked": e.Total}
	default:
		return Lifecycle{}, false
	}
	return l, true
}

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	// Clients are authenticated by the gate (certificate or bearer token),
	// not by cookies, so a cross-site page cannot ride on a session; the
	// gate also refuses cross-site Sec-Fetch-Site.
	CheckOrigin: func(*http.Request) bool { return true },
}

// writeWait bounds the write of one websocket message.
const writeWait = 10 * time.Second

// lifecycle serves GET /1.0/events: a websocket of the events that happen
// from now on, in the upstream shape. A caller whose trust ends is
// disconnected.
func (h *Handler) lifecycle(w http.ResponseWriter, r *http.Request) {
	id := authn.FromContext(r.Context())
	types := []string{"lifecycle", "operation"}
	if v := r.FormValue("type"); v != "" {
		types = strings.Split(v, ",")
	}
	for _, t := range types {
		if !slices.Contains(eventTypes, t) {
			response.Fail(w, r, h.log, response.BadRequest(fmt.Sprintf("%q isn't a supported event type", t)))
			return
		}
	}
	if slices.Contains(types, "logging") && !id.Admin() {
		response.Fail(w, r, h.log, response.Forbidden("Forbidden"))
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		response.Fail(w, r, h.log, response.BadRequest("GET /1.0/events is a websocket: the request must ask for an upgrade"))
		return
	}
	start, err := h.feed.LastSeq(r.Context())
	if err != nil {
		response.Fail(w, r, h.log, err)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // the client sends nothing; a read error means it left
		defer cancel()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	wantLifecycle := slices.Contains(types, "lifecycle")
	g := h.guard(r, id, cancel)
	out := follow(ctx, h, g, start+1, func(rec events.Record) ([]byte, bool) {
		if !wantLifecycle {
			return nil, false
		}
		env, p, err := events.DecodeRecord(rec.Raw)
		if err != nil || !visible(id, p) {
			return nil, false
		}
		l, ok := LifecycleOf(env, p)
		if !ok {
			return nil, false
		}
		meta, _ := json.Marshal(l)
		msg, _ := json.Marshal(Event{Type: "lifecycle", Timestamp: env.Time, Metadata: meta, Location: "none"})
		return msg, true
	})
	tick := time.NewTicker(h.recheck)
	defer tick.Stop()
	for {
		select {
		case msg := <-out:
			_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-tick.C:
			g.check()
		case <-ctx.Done():
			code, text := websocket.CloseNormalClosure, ""
			select {
			case <-g.ended:
				code, text = websocket.ClosePolicyViolation, "trust ended"
			default:
			}
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(writeWait))
			return
		}
	}
}
