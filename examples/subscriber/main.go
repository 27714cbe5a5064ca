// Command subscriber is an example service that follows Trustlog's trust
// changes from the event stream and prints them: the starting point for
// one that drops the sessions of removed clients, feeds a SIEM or mirrors
// trust elsewhere.
//
//	trustlogd --nats-listen 127.0.0.1:4222          # writes <dir>/subscriber.url
//	go run ./examples/subscriber --nats "$(cat ~/.local/share/trustlog/subscriber.url)" --durable example
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trustlog/trustlog/events"
	"github.com/trustlog/trustlog/events/subscribe"
)

func main() {
	url := flag.String("nats", "", "NATS URL with the subscriber's credentials (the contents of <dir>/subscriber.url)")
	creds := flag.String("creds", "", "NATS credentials file, for a cluster using them")
	durable := flag.String("durable", "", "durable consumer name: resume where the last run stopped")
	since := flag.String("since", "", "start at a sequence number or an RFC 3339 time (new consumers only)")
	flag.Parse()
	if *url == "" {
		log.Fatal("subscriber: --nats is required")
	}
	o := subscribe.Options{Durable: *durable}
	if *since != "" {
		var seq uint64
		if _, err := fmt.Sscan(*since, &seq); err == nil {
			o.StartSeq = seq
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			o.StartTime = t
		} else {
			log.Fatalf("subscriber: --since %q is neither a sequence nor an RFC 3339 time", *since)
		}
	}
	opts := []nats.Option{nats.Name("trustlog-example-subscriber"), nats.MaxReconnects(-1)}
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	nc, err := nats.Connect(strings.TrimSpace(*url), opts...)
	if err != nil {
		log.Fatalf("subscriber: %v", err)
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = subscribe.Run(ctx, nc, o, func(_ context.Context, ev subscribe.Event) error {
		fmt.Println(describe(ev))
		return nil
	})
	if err != nil {
		log.Fatalf("subscriber: %v", err)
	}
}

// describe is one line per event: what changed, and who did it.
func describe(ev subscribe.Event) string {
	who := ev.Envelope.ActorName + " (" + ev.Envelope.ActorMethod + ")"
	switch e := ev.Payload.(type) {
	case *events.CertificateTrusted:
		return fmt.Sprintf("%d trusted %s %q (%s) by %s", ev.Seq, e.Fingerprint, e.Name, e.Type, who)
	case *events.CertificateUpdated:
		return fmt.Sprintf("%d updated %s %q by %s", ev.Seq, e.Fingerprint, e.Name, who)
	case *events.CertificateRemoved:
		return fmt.Sprintf("%d removed %s %q by %s", ev.Seq, e.Fingerprint, e.Name, who)
	case *events.TokenIssued:
		return fmt.Sprintf("%d token issued for %q, expires %s, by %s", ev.Seq, e.Name, e.ExpiresAt.Format(time.RFC3339), who)
	case *events.TokenRedeemed:
		return fmt.Sprintf("%d token for %q redeemed by %s", ev.Seq, e.Name, e.Fingerprint)
	case *events.CRLUpdated:
		return fmt.Sprintf("%d CRL %s: %d revoked", ev.Seq, e.Number, e.Total)
	case nil:
		return fmt.Sprintf("%d %s (unknown to this version)", ev.Seq, ev.Envelope.Type)
	}
	return fmt.Sprintf("%d %s by %s", ev.Seq, ev.Envelope.Type, who)
}
