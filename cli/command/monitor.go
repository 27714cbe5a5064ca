package command

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// storedEvent is what the monitor shows of a CloudEvents envelope.
type storedEvent struct {
	ID           string          `json:"id" yaml:"id"`
	Type         string          `json:"type" yaml:"type"`
	Subject      string          `json:"subject" yaml:"subject"`
	Time         time.Time       `json:"time" yaml:"time"`
	ActorName    string          `json:"actorname,omitempty" yaml:"actorname,omitempty"`
	ActorMethod  string          `json:"actormethod,omitempty" yaml:"actormethod,omitempty"`
	ActorAddress string          `json:"actoraddress,omitempty" yaml:"actoraddress,omitempty"`
	Data         json.RawMessage `json:"data" yaml:"-"`
}

func (e *env) monitorCmd() *cobra.Command {
	var since, types, format string
	cmd := &cobra.Command{
		Use:   "monitor [<remote>:]",
		Short: "Follow trust changes as they are stored, from now or from --since",
		Long: `Follow trust changes as they are stored.

--since starts from an event sequence number or an RFC 3339 time instead of now;
--type keeps only some event types (full, such as trustlog.certificate.trusted.v1,
as monitor and audit history print them, such as certificate.trusted.v1, or
short, such as certificate.trusted; comma-separated). The stream ends when
interrupted, or when the server stops trusting the caller.`,
		Args: e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "pretty", formatJSON, formatYAML:
			default:
				return fmt.Errorf("Invalid format %q (pretty, json or yaml)", format)
			}
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			q := url.Values{}
			if since != "" {
				q.Set("since", since)
			}
			if types != "" {
				q.Set("type", fullTypes(types))
			}
			path := "/1.0/trustlog/events"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			body, err := c.Stream(cmd.Context(), path)
			if err != nil {
				return err
			}
			defer body.Close()
			sc := bufio.NewScanner(body)
			sc.Buffer(make([]byte, 64<<10), 64<<20)
			var seq, typ, data string
			for sc.Scan() {
				line := sc.Text()
				switch {
				case line == "":
					if typ == "trustlog.end" {
						return errors.New("the server ended the stream: it no longer trusts this client")
					}
					if data != "" {
						if err := e.printEvent(format, seq, data); err != nil {
							return err
						}
					}
					seq, typ, data = "", "", ""
				case strings.HasPrefix(line, ":"):
				case strings.HasPrefix(line, "id: "):
					seq = strings.TrimPrefix(line, "id: ")
				case strings.HasPrefix(line, "event: "):
					typ = strings.TrimPrefix(line, "event: ")
				case strings.HasPrefix(line, "data: "):
					data = strings.TrimPrefix(line, "data: ")
				}
			}
			if cmd.Context().Err() != nil {
				return nil // interrupted
			}
			if err := sc.Err(); err != nil {
				return err
			}
			return errors.New("the server closed the stream")
		},
		Example:           exampleMonitor,
		ValidArgsFunction: e.completeRemote,
	}
	cmd.Flags().StringVar(&since, "since", "", "start at this event sequence number or RFC 3339 time (default: now)")
	cmd.Flags().StringVar(&types, "type", "", "event types to show, comma-separated (default: all)")
	cmd.Flags().StringVarP(&format, "format", "f", "pretty", "output format (pretty, json, yaml)")
	return cmd
}

// printEvent writes one stored event: pretty is one line, json the
// sequence and the envelope as stored ({"seq":N,"event":{...}}, one line
// each), yaml the sequence, the envelope's attributes and data.
func (e *env) printEvent(format, seq, data string) error {
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return fmt.Errorf("the server sent an event without a sequence number (id %q)", seq)
	}
	if format == formatJSON {
		if !json.Valid([]byte(data)) {
			return fmt.Errorf("event %d: not JSON", n)
		}
		// Built by hand so that the envelope stays byte for byte as stored
		// (its hash is the next event's prevhash).
		fmt.Fprintf(e.stdout, "{\"seq\":%d,\"event\":%s}\n", n, data)
		return nil
	}
	var ev storedEvent
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return fmt.Errorf("event %d: %w", n, err)
	}
	if format == formatYAML {
		var payload any
		_ = json.Unmarshal(ev.Data, &payload)
		doc := map[string]any{"seq": n, "event": ev, "data": payload}
		out, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "---\n%s", out)
		return nil
	}
	actor := ev.ActorName
	if ev.ActorMethod != "" {
		actor += " (" + ev.ActorMethod
		if ev.ActorAddress != "" {
			actor += " from " + ev.ActorAddress
		}
		actor += ")"
	}
	fmt.Fprintf(e.stdout, "%d  %s  %-34s %s  by %s\n", n, ev.Time.UTC().Format(time.RFC3339), shortType(ev.Type), ev.Subject, actor)
	return nil
}

// versioned matches a type as shortType prints it: it ends in a version.
var versioned = regexp.MustCompile(`^[a-z0-9_.]+\.v[0-9]+$`)

// fullTypes turns the types of --type that are written as shortType prints
// them (certificate.trusted.v1) into full types, which the server takes;
// it takes the others (full, or short without a version) as they are.
func fullTypes(types string) string {
	list := strings.Split(types, ",")
	for i, t := range list {
		t = strings.TrimSpace(t)
		if !strings.HasPrefix(t, "trustlog.") && versioned.MatchString(t) {
			t = "trustlog." + t
		}
		list[i] = t
	}
	return strings.Join(list, ",")
}

// shortType is how monitor and audit history name an event type: without
// the "trustlog." prefix every type shares (certificate.trusted.v1), a
// name `monitor --type` accepts.
func shortType(t string) string { return strings.TrimPrefix(t, "trustlog.") }
