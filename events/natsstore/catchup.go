package natsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
)

// A replay of a long backlog (a new instance, a Lambda's cold start without
// a snapshot) does not go through the ordered consumer Follow uses
// afterwards: its per-message machinery (a timer and a heartbeat reset for
// every Next, a select over several channels, metadata parsed into
// strings) cost more than decoding and folding the event. Instead, catchUp
// pulls the backlog through a plain subscription in large requests, two in
// flight, and reads each message's sequence numbers from its reply subject
// in place. It checks the consumer sequence for gaps as the ordered
// consumer does, and on any surprise it stops: Follow then carries on from
// the last event delivered, through the ordered consumer.
const (
	// catchUpMin is the smallest backlog worth a catch-up consumer.
	catchUpMin = 4096
	// pullBatch is how many events one pull request asks for.
	pullBatch = 4096
)

// catchUp delivers the events stored from sequence from to the end of the
// stream as it was when catchUp started, and returns the sequence after
// the last one delivered. An error says why it stopped early; what was
// delivered before it stands.
func (s *Store) catchUp(ctx context.Context, from uint64, idle time.Duration, fn func(rec events.Record, pending uint64), contact func(time.Time)) (uint64, error) {
	next := from
	actx, cancel := context.WithTimeout(ctx, idle)
	last, err := s.LastSeq(actx)
	cancel()
	if err != nil || last < from || last-from+1 < catchUpMin {
		return next, err
	}
	actx, cancel = context.WithTimeout(ctx, idle)
	cons, err := s.js.CreateConsumer(actx, s.stream, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: max(10*idle, time.Minute), // the server's cleanup if we die here
	})
	cancel()
	if err != nil {
		return next, fmt.Errorf("natsstore: catch up: %w", err)
	}
	info := cons.CachedInfo()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idle)
		defer cancel()
		_ = s.js.DeleteConsumer(dctx, s.stream, info.Name)
	}()
	total := info.NumPending // the backlog, fixed when the consumer was made
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return next, fmt.Errorf("natsstore: catch up: %w", err)
	}
	defer sub.Unsubscribe()
	// Unsubscribing wakes a NextMsg waiting for an event: cancelling ctx
	// ends the catch-up at once, not after the idle wait.
	stop := context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	defer stop()
	// Open makes s.js with jetstream.New: the default API prefix.
	subject := jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + s.stream + "." + info.Name
	// Each request expires a little after idle, so that a consumer that
	// stops delivering is noticed by the wait below rather than by the
	// server's answer.
	var requested, received uint64
	// pull asks for the next pullBatch events of the backlog, if any are
	// left to ask for.
	pull := func() error {
		if requested == total {
			return nil
		}
		n := min(pullBatch, total-requested)
		body := fmt.Appendf(nil, `{"batch":%d,"expires":%d}`, n, (idle + idle/2).Nanoseconds())
		if err := s.nc.PublishRequest(subject, inbox, body); err != nil {
			return fmt.Errorf("natsstore: catch up: %w", err)
		}
		requested += n
		return nil
	}
	for range 2 { // two requests in flight
		if err := pull(); err != nil {
			return next, err
		}
	}
	contact(time.Now())
	for received < total {
		if ctx.Err() != nil {
			return next, ctx.Err()
		}
		msg, err := sub.NextMsg(idle)
		if err != nil {
			if ctx.Err() != nil {
				return next, ctx.Err()
			}
			if errors.Is(err, nats.ErrTimeout) {
				return next, fmt.Errorf("natsstore: catch up: no event for %s after sequence %d", idle, next-1)
			}
			return next, fmt.Errorf("natsstore: catch up: %w", err)
		}
		if len(msg.Data) == 0 && msg.Header.Get("Status") != "" {
			// 404, 408, 409: a request ended short (the consumer went, its
			// leader changed...). Follow takes over from here.
			return next, fmt.Errorf("natsstore: catch up: status %s %s", msg.Header.Get("Status"), msg.Header.Get("Description"))
		}
		sseq, cseq, pending, ok := ackSeqs(msg.Reply)
		if !ok {
			return next, fmt.Errorf("natsstore: catch up: unexpected reply subject %q", msg.Reply)
		}
		received++
		if cseq != received {
			return next, fmt.Errorf("natsstore: catch up: delivery %d arrived as %d", received, cseq)
		}
		next = sseq + 1
		fn(events.Record{Seq: sseq, Raw: msg.Data}, pending)
		if received%pullBatch == 0 {
			contact(time.Now())
			if err := pull(); err != nil {
				return next, err
			}
		}
	}
	contact(time.Now())
	return next, nil
}

// ackSeqs reads the stream sequence, the consumer sequence and the number
// of messages pending from a JetStream reply subject, in either form:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
//	$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>[.<token>]
//
// without allocating.
func ackSeqs(reply string) (sseq, cseq, pending uint64, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return 0, 0, 0, false
	}
	var tok [10]string
	n := 0
	for n < len(tok) {
		t, r, more := strings.Cut(rest, ".")
		tok[n], rest = t, r
		n++
		if !more {
			break
		}
	}
	// tok holds the tokens after "$JS.ACK.": 7 in the first form, 9 or
	// more in the second.
	var at int
	switch {
	case n == 7:
		at = 3 // <delivered> is tok[2]; sseq, cseq, time, pending follow
	case n >= 9:
		at = 5
	default:
		return 0, 0, 0, false
	}
	sseq, e1 := strconv.ParseUint(tok[at], 10, 64)
	cseq, e2 := strconv.ParseUint(tok[at+1], 10, 64)
	pending, e3 := strconv.ParseUint(tok[at+3], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil {
		return 0, 0, 0, false
	}
	return sseq, cseq, pending, true
}
