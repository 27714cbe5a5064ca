// Package events defines Trustlog's events: the versioned payload types, the
// CloudEvents 1.0 structured JSON envelope that carries them, and the hash
// chain that links each stored event to its predecessor.
//
// Events are the source of truth. They are plain structs with an explicit,
// versioned type name; a change of meaning gets a new version and old versions
// decode forever (see testdata/ for one golden file per version).
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SpecVersion is the CloudEvents specification version of every envelope.
const SpecVersion = "1.0"

// ContentType is the media type of a structured CloudEvents JSON envelope.
const ContentType = "application/cloudevents+json"

// SubjectPrefix is the first token of every NATS subject Trustlog writes.
const SubjectPrefix = "trustlog"

// ErrConflict reports that an append was refused because the stream had moved
// past the sequence the decision was made at. Callers catch up and decide again.
var ErrConflict = errors.New("events: stream moved past the expected sequence")

// ErrUnavailable reports that an append could not reach the stream: the
// connection is down or reconnecting, or nothing answered for the stream.
// Nothing was written, or (after a timeout) the caller cannot know whether
// it was; the write may be tried again later.
var ErrUnavailable = errors.New("events: the event stream is unreachable")

// ErrUnknownType reports an envelope whose type this version of Trustlog does not know.
var ErrUnknownType = errors.New("events: unknown event type")

// Actor says who caused an event, and how they proved it. It travels as
// CloudEvents extension attributes.
type Actor struct {
	// Name is the identity name: a certificate fingerprint, an OIDC user, a
	// local user name on the unix socket, or "trustlogd" for the server itself.
	Name string
	// Method is the authentication method: "tls", "unix", "oidc", "pki", "system".
	Method string
	// Address is the source address of the request, if any.
	Address string
}

// Envelope is a CloudEvents 1.0 structured-mode event as stored on the stream.
// The JSON field order is fixed by the struct; extension attributes are
// lowercase alphanumerics as the CloudEvents specification requires.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`

	// ActorName, ActorMethod and ActorAddress are the Actor extensions.
	ActorName    string `json:"actorname,omitempty"`
	ActorMethod  string `json:"actormethod,omitempty"`
	ActorAddress string `json:"actoraddress,omitempty"`
	// PrevHash is the lowercase hex SHA-256 of the stored bytes of the
	// previous event on the stream, or "" for the first event.
	PrevHash string `json:"prevhash"`
}

// Actor returns the envelope's actor extensions.
func (e *Envelope) Actor() Actor {
	return Actor{Name: e.ActorName, Method: e.ActorMethod, Address: e.ActorAddress}
}

// Payload is implemented by every event data type.
type Payload interface {
	// EventType returns the versioned CloudEvents type, such as
	// "trustlog.certificate.trusted.v1". It never derives from the Go type name.
	EventType() string
	// EventSubject returns the NATS subject the event is stored under,
	// such as "trustlog.cert.<fingerprint>".
	EventSubject() string
}

// New wraps a payload in an envelope. The previous hash is set when the
// event is appended; id, source and time come from the caller so that tests
// control them.
func New(id, source string, at time.Time, actor Actor, p Payload) (Envelope, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode %s: %w", p.EventType(), err)
	}
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          source,
		Type:            p.EventType(),
		Subject:         p.EventSubject(),
		Time:            at.UTC(),
		DataContentType: "application/json",
		Data:            data,
		ActorName:       actor.Name,
		ActorMethod:     actor.Method,
		ActorAddress:    actor.Address,
	}, nil
}

// Marshal returns the bytes stored on the stream for e.
func (e *Envelope) Marshal() ([]byte, error) {
	return json.Marshal(e)
}

// Decode parses stored bytes into an envelope and checks the attributes
// CloudEvents requires. It does not decode the payload; see Envelope.Payload.
func Decode(raw []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		return Envelope{}, fmt.Errorf("events: decode envelope: %w", err)
	}
	if err := e.check(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// DecodeRecord parses stored bytes into an envelope and its typed payload,
// exactly as Decode followed by Envelope.Payload would: replay spends most
// of its time here. What Marshal writes is read by decodeCanonical in one
// pass; anything else takes the two-step path. The returned envelope's Data
// is left empty.
func DecodeRecord(raw []byte) (Envelope, Payload, error) {
	if env, p, ok := decodeCanonical(raw); ok {
		return env, p, nil
	}
	env, err := Decode(raw)
	if err != nil {
		return Envelope{}, nil, err
	}
	p, err := env.Payload()
	env.Data = nil
	return env, p, err
}

// check verifies the attributes CloudEvents requires.
func (e *Envelope) check() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("events: unsupported specversion %q", e.SpecVersion)
	case e.ID == "":
		return errors.New("events: envelope without id")
	case e.Source == "":
		return errors.New("events: envelope without source")
	case e.Type == "":
		return errors.New("events: envelope without type")
	}
	return nil
}

// Hash returns the chain hash of stored event bytes: lowercase hex SHA-256.
func Hash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Record is one stored event as read back from the stream.
type Record struct {
	// Seq is the stream sequence, starting at 1.
	Seq uint64
	// Raw is the stored envelope bytes; Hash(Raw) is the next event's PrevHash.
	Raw []byte
}
