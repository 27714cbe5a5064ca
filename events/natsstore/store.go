// Package natsstore keeps Trustlog's events on a NATS JetStream stream: it
// creates the stream, appends events under an expected last sequence, and
// follows the stream in order for projections.
//
// It is a wiring package: only hosts (local/, Lambda mains) and tests use it.
package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
)

// DefaultStream is the name of the stream holding every Trustlog event.
const DefaultStream = "TRUSTLOG"

// Config configures a Store. The zero value is valid: stream TRUSTLOG, one
// replica, a two-minute duplicate window.
type Config struct {
	// Stream is the stream name; "" means DefaultStream.
	Stream string
	// Replicas is the number of stream replicas: 1 for an embedded server,
	// 3 for a cluster. 0 means 1.
	Replicas int
	// Duplicates is the window in which a repeated event id is dropped; 0 means two minutes.
	Duplicates time.Duration
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("natsstore: replicas must be between 1 and 5, got %d", c.Replicas)
	}
	if c.Duplicates < 0 {
		return errors.New("natsstore: negative duplicate window")
	}
	return nil
}

func (c Config) stream() string {
	if c.Stream == "" {
		return DefaultStream
	}
	return c.Stream
}

// Store appends to and reads from the Trustlog stream. It is safe for
// concurrent use.
type Store struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string

	outage outage // appends' view of the connection being down
}

// Open creates the stream if it does not exist (or updates its settings) and
// returns a Store on it.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natsstore: %w", err)
	}
	replicas := cfg.Replicas
	if replicas == 0 {
		replicas = 1
	}
	dups := cfg.Duplicates
	if dups == 0 {
		dups = 2 * time.Minute
	}
	sc := jetstream.StreamConfig{
		Name:               cfg.stream(),
		Description:        "Trustlog events: the source of truth of the trust store",
		Subjects:           []string{events.SubjectPrefix + ".>"},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Replicas:           replicas,
		Duplicates:         dups,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowAtomicPublish: true,
		AllowDirect:        true,
	}
	// A cluster still electing its leaders does not answer or says it is
	// temporarily unavailable, and one whose members are still joining
	// cannot place a replicated stream: each attempt is bounded, and those
	// are retried while ctx allows (the caller bounds ctx).
	for {
		actx, cancel := context.WithTimeout(ctx, infoAttempt)
		_, err := js.CreateOrUpdateStream(actx, sc)
		cancel()
		if err == nil {
			return &Store{nc: nc, js: js, stream: sc.Name}, nil
		}
		var api *jetstream.APIError
		transient := errors.As(err, &api) && (api.ErrorCode == jsClusterNoPeers || api.ErrorCode == jsTemporarilyUnavailable)
		if ctx.Err() != nil || !(transient || errors.Is(err, context.DeadlineExceeded)) {
			return nil, fmt.Errorf("natsstore: create stream %s: %w", sc.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("natsstore: create stream %s: %w (last: %v)", sc.Name, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// JetStream's error codes for a cluster that is not ready yet: "no
// suitable peers for placement" (a replicated stream asked for before
// enough members joined) and "JetStream system temporarily unavailable"
// (no meta leader yet: members restarting together, or no quorum).
const (
	jsClusterNoPeers         = 10005
	jsTemporarilyUnavailable = 10008
)

// Stream returns the name of the stream.
func (s *Store) Stream() string { return s.stream }

// LastSeq returns the sequence of the last event on the stream (0 if empty).
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	// A request that reaches a clustered stream while it elects a leader
	// gets no answer at all: each attempt is bounded, and retried while
	// ctx allows.
	for {
		actx, cancel := context.WithTimeout(ctx, infoAttempt)
		// Stream looks the stream up with one info request; its cached info is fresh.
		st, err := s.js.Stream(actx, s.stream)
		cancel()
		if err == nil {
			return st.CachedInfo().State.LastSeq, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("natsstore: stream info: %w", err)
		}
	}
}

// infoAttempt bounds one stream-info request.
const infoAttempt = 2 * time.Second

// Append stores envs as one atomic unit after the event at sequence expect,
// whose stored bytes hash to prevHash. It fills in each envelope's PrevHash,
// and returns the sequence of the last event written. If the stream has
// moved past expect, nothing is written and the error wraps events.ErrConflict.
// If the stream cannot be reached (the connection is closed, or still
// reconnecting after reconnectWait; nothing answers for the stream; no
// acknowledgement in time) the error wraps events.ErrUnavailable; a
// connection known to be down fails at once, without publishing.
func (s *Store) Append(ctx context.Context, expect uint64, prevHash string, envs ...events.Envelope) (uint64, error) {
	if len(envs) == 0 {
		return expect, nil
	}
	if err := s.connected(ctx); err != nil {
		return 0, err
	}
	msgs := make([]*nats.Msg, len(envs))
	for i := range envs {
		envs[i].PrevHash = prevHash
		raw, err := envs[i].Marshal()
		if err != nil {
			return 0, err
		}
		prevHash = events.Hash(raw)
		m := nats.NewMsg(envs[i].Subject)
		if envs[i].Subject == "" {
			return 0, fmt.Errorf("natsstore: event %s has no subject", envs[i].Type)
		}
		m.Data = raw
		m.Header.Set("Content-Type", events.ContentType)
		m.Header.Set(jetstream.MsgIDHeader, envs[i].ID)
		msgs[i] = m
	}
	if len(msgs) == 1 {
		msgs[0].Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(expect, 10))
		ack, err := s.js.PublishMsg(ctx, msgs[0])
		if err != nil {
			return 0, mapErr(ctx, err)
		}
		return ack.Sequence, nil
	}
	return s.appendBatch(ctx, expect, msgs)
}

// appendBatch publishes msgs as a JetStream atomic batch: either all of them
// are stored, contiguously, or none.
func (s *Store) appendBatch(ctx context.Context, expect uint64, msgs []*nats.Msg) (uint64, error) {
	id := msgs[0].Header.Get(jetstream.MsgIDHeader)
	msgs[0].Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(expect, 10))
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := s.nc.PublishMsg(m); err != nil {
				return 0, mapErr(ctx, err)
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	resp, err := s.nc.RequestMsgWithContext(ctx, msgs[len(msgs)-1])
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	var ack struct {
		Sequence uint64              `json:"seq"`
		Error    *jetstream.APIError `json:"error"`
		Count    int                 `json:"count"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("natsstore: batch commit reply: %w", err)
	}
	if ack.Error != nil {
		return 0, mapErr(ctx, ack.Error)
	}
	if ack.Count != len(msgs) {
		return 0, fmt.Errorf("natsstore: batch committed %d of %d events", ack.Count, len(msgs))
	}
	return ack.Sequence, nil
}

// reconnectWait bounds how long an append waits for a connection that is
// reconnecting before it reports the stream unreachable.
const reconnectWait = time.Second

// outage is when appends first found the connection down, per outage (an
// outage ends with a successful reconnect).
type outage struct {
	mu         sync.Mutex
	since      time.Time
	reconnects uint64 // the connection's reconnect count when it began
}

// began returns when the current outage was first seen, given the
// connection's reconnect count now.
func (o *outage) began(reconnects uint64) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() || o.reconnects != reconnects {
		o.since, o.reconnects = time.Now(), reconnects
	}
	return o.since
}

// connected returns nil if the connection can carry an append now. A
// connection that is reconnecting gets reconnectWait from when an append
// first found it down to come back, so appends during a long outage fail at
// once; one that is closed or draining fails at once. The error wraps
// events.ErrUnavailable.
func (s *Store) connected(ctx context.Context) error {
	switch s.nc.Status() {
	case nats.CONNECTED:
		return nil
	case nats.RECONNECTING, nats.CONNECTING, nats.DISCONNECTED:
	default:
		return fmt.Errorf("%w: connection %s", events.ErrUnavailable, s.nc.Status())
	}
	ch := s.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer s.nc.RemoveStatusListener(ch)
	if s.nc.Status() == nats.CONNECTED { // came back before the listener was in place
		return nil
	}
	left := reconnectWait - time.Since(s.outage.began(s.nc.Stats().Reconnects))
	if left <= 0 {
		return fmt.Errorf("%w: connection %s", events.ErrUnavailable, s.nc.Status())
	}
	wait := time.NewTimer(left)
	defer wait.Stop()
	select {
	case st := <-ch:
		if st == nats.CONNECTED {
			return nil
		}
	case <-wait.C:
	case <-ctx.Done():
	}
	return fmt.Errorf("%w: connection %s", events.ErrUnavailable, s.nc.Status())
}

// JetStream error codes that mean the stream cannot be reached now.
const (
	jsClusterNotAvailable = 10008 // "JetStream system temporarily unavailable"
)

// mapErr maps a failed append: the wrong-last-sequence error to
// events.ErrConflict, errors that mean the stream was not reached (or did
// not answer in time) to events.ErrUnavailable.
func mapErr(ctx context.Context, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return fmt.Errorf("%w: %s", events.ErrConflict, apiErr.Description)
		case jsClusterNotAvailable, jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount:
			return fmt.Errorf("%w: %s", events.ErrUnavailable, apiErr.Description)
		}
	}
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The caller gave up; that says nothing about the stream.
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", events.ErrUnavailable, err)
	}
	return fmt.Errorf("natsstore: append: %w", err)
}

// MaxPayload returns the largest message the server accepts, headers
// included: its max_payload, 1 MiB unless configured otherwise. An event
// appended must stay below it.
func (s *Store) MaxPayload() int64 { return s.nc.MaxPayload() }

// Follow delivers the stream's events in order, from sequence from (1 for
// the beginning), until ctx ends or the stream fails. fn receives each
// record and the number of records still pending behind it on the server
// (0 when it was the last one known). When no event arrives within idle,
// Follow checks the stream is reachable and calls contact, so the caller knows
// when it last heard from the stream.
func (s *Store) Follow(ctx context.Context, from uint64, idle time.Duration, fn func(rec events.Record, pending uint64), contact func(time.Time)) error {
	if idle <= 0 {
		idle = time.Second
	}
	if contact == nil {
		contact = func(time.Time) {}
	}
	next := max(from, 1) // the next sequence expected
	// A long backlog is pulled in bulk first (see catchUp). If that stops
	// early, for whatever reason, the ordered consumer below carries on
	// from the last event it delivered; a stream that cannot be reached
	// fails there.
	next, _ = s.catchUp(ctx, next, idle, fn, contact)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if next > 1 {
		occ.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		occ.OptStartSeq = next
	}
	oc, err := s.js.OrderedConsumer(ctx, s.stream, occ)
	if err != nil {
		return fmt.Errorf("natsstore: follow: %w", err)
	}
	it, err := oc.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("natsstore: follow: %w", err)
	}
	defer it.Stop()
	// Stopping the iterator wakes a Next that is waiting for an event, so
	// cancelling ctx ends Follow at once rather than after the idle wait.
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg, err := it.Next(jetstream.NextMaxWait(idle))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) {
				pctx, cancel := context.WithTimeout(ctx, idle)
				last, perr := s.LastSeq(pctx)
				cancel()
				if perr == nil && last >= next {
					// The stream holds events the consumer has not delivered in
					// a whole idle period: it is stuck (its server left the
					// cluster, say). Give up so the caller follows again from
					// where it is, instead of waiting for heartbeats to notice.
					return fmt.Errorf("natsstore: follow: consumer stalled before %d while the stream is at %d", next, last)
				}
				if perr == nil {
					contact(time.Now())
				}
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("natsstore: follow: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("natsstore: follow: %w", err)
		}
		contact(time.Now())
		next = meta.Sequence.Stream + 1
		fn(events.Record{Seq: meta.Sequence.Stream, Raw: msg.Data()}, meta.NumPending)
	}
}

// SeqAt returns the sequence of the first event the stream stored at or
// after t (LastSeq()+1 when there is none), found by binary search over the
// stored messages' times, and the time of the first stored event (zero for
// an empty stream).
func (s *Store) SeqAt(ctx context.Context, t time.Time) (uint64, time.Time, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("natsstore: seq at: %w", err)
	}
	info := st.CachedInfo()
	first, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 {
		return last + 1, time.Time{}, nil
	}
	timeOf := func(seq uint64) (time.Time, error) {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return time.Time{}, fmt.Errorf("natsstore: seq at %d: %w", seq, err)
		}
		return m.Time, nil
	}
	firstTime, err := timeOf(first)
	if err != nil {
		return 0, time.Time{}, err
	}
	lo, hi := first, last+1 // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		mt, err := timeOf(mid)
		if err != nil {
			return 0, time.Time{}, err
		}
		if mt.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, firstTime, nil
}

// Read returns the stored records with sequences in [from, to], in order,
// fetched directly (not through a consumer). It is meant for audit and
// history, not for the hot path.
func (s *Store) Read(ctx context.Context, from, to uint64) ([]events.Record, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return nil, fmt.Errorf("natsstore: read: %w", err)
	}
	var out []events.Record
	for seq := max(from, 1); seq <= to; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("natsstore: read %d: %w", seq, err)
		}
		out = append(out, events.Record{Seq: m.Sequence, Raw: m.Data})
	}
	return out, nil
}
