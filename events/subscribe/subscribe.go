// Package subscribe lets other services follow Trustlog's trust changes
// straight from the JetStream stream: from the start, from a sequence or
// from a time; with a durable consumer that resumes where it stopped after
// a restart; at least once, with each event's id for idempotency; decoded
// into the typed events of package events.
//
//	nc, _ := nats.Connect(url) // e.g. the contents of <dir>/subscriber.url
//	err := subscribe.Run(ctx, nc, subscribe.Options{Durable: "siem"}, func(ctx context.Context, ev subscribe.Event) error {
//		if r, ok := ev.Payload.(*events.CertificateRemoved); ok {
//			dropSessions(r.Fingerprint)
//		}
//		return nil // acknowledged; an error redelivers it later
//	})
package subscribe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustlog/trustlog/events"
)

// Options say where to start and what to receive.
type Options struct {
	// Stream is the stream name; "" means TRUSTLOG.
	Stream string
	// Durable names a durable consumer: it survives the subscriber's
	// restart and resumes after the last acknowledged event. "" makes an
	// ephemeral consumer that ends with the subscription.
	Durable string
	// StartSeq and StartTime choose the first event of a new consumer
	// (ignored when a durable consumer already exists); both zero means
	// from the beginning.
	StartSeq  uint64
	StartTime time.Time
	// Subjects filters by NATS subject, such as "trustlog.cert.>"; empty
	// means every event.
	Subjects []string
	// AckWait is how long a handler may take before its event is
	// redelivered; 0 means 30 seconds.
	AckWait time.Duration
}

// Event is one delivered event.
type Event struct {
	// Seq is the stream sequence; Envelope the CloudEvents envelope (its ID
	// is unique: use it to make handling idempotent).
	Seq      uint64
	Envelope events.Envelope
	// Payload is the typed event (such as *events.CertificateRemoved), or
	// nil when this version of the package does not know the type.
	Payload events.Payload
	// Redelivered is true when the event was delivered before and not
	// acknowledged.
	Redelivered bool
}

// Handler handles one event. Returning nil acknowledges it; an error makes
// it come again after a back-off.
type Handler func(ctx context.Context, ev Event) error

// ErrUndecodable is the reason recorded when a stored record is not a
// Trustlog envelope: it is terminated (never redelivered) and skipped,
// since no retry can make it decode.
var ErrUndecodable = errors.New("subscribe: record is not a Trustlog event")

// Run delivers events to h until ctx ends (then it returns nil) or the
// subscription fails.
func Run(ctx context.Context, nc *nats.Conn, o Options, h Handler) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	stream := o.Stream
	if stream == "" {
		stream = "TRUSTLOG"
	}
	ackWait := o.AckWait
	if ackWait <= 0 {
		ackWait = 30 * time.Second
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        o.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxDeliver:     -1,
		FilterSubjects: o.Subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	switch {
	case o.StartSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.StartSeq
	case !o.StartTime.IsZero():
		t := o.StartTime
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if o.Durable == "" {
		cfg.InactiveThreshold = time.Minute
	}
	var cons jetstream.Consumer
	if o.Durable != "" {
		// An existing durable consumer keeps its position: only create it.
		if cons, err = js.Consumer(ctx, stream, o.Durable); errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = js.CreateConsumer(ctx, stream, cfg)
		}
	} else {
		cons, err = js.CreateConsumer(ctx, stream, cfg)
	}
	if err != nil {
		return fmt.Errorf("subscribe: consumer on %s: %w", stream, err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer msgs.Stop()
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	for {
		msg, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("subscribe: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			_ = msg.Term()
			continue
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			_ = msg.TermWithReason(ErrUndecodable.Error())
			continue
		}
		ev := Event{Seq: meta.Sequence.Stream, Envelope: env, Redelivered: meta.NumDelivered > 1}
		if p, err := env.Payload(); err == nil {
			ev.Payload = p
		}
		if err := h(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Redelivered after a back-off that doubles from 1 s to 1 min.
			_ = msg.NakWithDelay(min(time.Second<<min(meta.NumDelivered-1, 6), time.Minute))
			continue
		}
		// The ack outlives ctx: an event handled just before the subscriber
		// stops is acknowledged, not delivered again on the next run.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = msg.DoubleAck(actx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("subscribe: ack %d: %w", ev.Seq, err)
		}
	}
}
