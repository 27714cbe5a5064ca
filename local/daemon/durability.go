package daemon

import (
	"fmt"
	"strings"
	"time"
)

// SyncPolicy says when the embedded NATS server writes JetStream messages
// through to disk (fsync). The zero value syncs every write before it is
// acknowledged, so an acknowledged change of trust survives a power
// failure or an OS crash (docs/architecture.md, D6).
type SyncPolicy struct {
	// Interval, if not zero, syncs in the background every Interval
	// instead (JetStream's own default is two minutes): writes are
	// acknowledged before they are on disk, and the last Interval of them
	// can be lost to a power failure or an OS crash.
	Interval time.Duration
}

// Bounds of SyncPolicy.Interval.
const (
	minSyncInterval = time.Millisecond
	maxSyncInterval = 10 * time.Minute
)

// Always reports whether every write is synced before it is acknowledged.
func (p SyncPolicy) Always() bool { return p.Interval == 0 }

// String returns the policy as the --sync flag spells it.
func (p SyncPolicy) String() string {
	if p.Always() {
		return "always"
	}
	return "interval:" + p.Interval.String()
}

// MarshalText implements encoding.TextMarshaler.
func (p SyncPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: "always" or
// "interval:<duration>" (a Go duration such as 1s or 2m, from 1ms to 10m).
func (p *SyncPolicy) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "always" {
		*p = SyncPolicy{}
		return nil
	}
	v, ok := strings.CutPrefix(s, "interval:")
	if !ok {
		return fmt.Errorf("sync policy %q: want always or interval:<duration>", s)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("sync policy %q: %w", s, err)
	}
	q := SyncPolicy{Interval: d}
	if d == 0 {
		return fmt.Errorf("sync policy %q: an interval of 0 would be always; say always", s)
	}
	if err := q.Validate(); err != nil {
		return err
	}
	*p = q
	return nil
}

// Validate reports whether p can be used.
func (p SyncPolicy) Validate() error {
	if p.Interval != 0 && (p.Interval < minSyncInterval || p.Interval > maxSyncInterval) {
		return fmt.Errorf("sync interval %v: want %v to %v (or always)", p.Interval, minSyncInterval, maxSyncInterval)
	}
	return nil
}
