package tokens

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultExpiry is the token lifetime when core.remote_token_expiry is
// unset: one day. Tokens are meant to be used right after they are issued;
// a finite default means a forgotten token stops being a way in.
const DefaultExpiry = "1d"

var expiryTerm = regexp.MustCompile(`^(\d+)(S|M|H|d|w|m|y)$`)

// ParseExpiry validates an expiry in the grammar of core.remote_token_expiry
// (space-separated terms such as "1d 12H": S seconds, M minutes, H hours,
// d days, w weeks, m months, y years; each unit at most once) and returns
// the instant it names after from. Calendar units use calendar arithmetic.
func ParseExpiry(s string, from time.Time) (time.Time, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return time.Time{}, fmt.Errorf("invalid expiry %q: empty", s)
	}
	seen := map[string]bool{}
	var years, months, days int
	var dur time.Duration
	for _, f := range fields {
		m := expiryTerm.FindStringSubmatch(f)
		if m == nil {
			return time.Time{}, fmt.Errorf("invalid expiry %q: bad term %q", s, f)
		}
		unit := m[2]
		if seen[unit] {
			return time.Time{}, fmt.Errorf("invalid expiry %q: unit %q given twice", s, unit)
		}
		seen[unit] = true
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			return time.Time{}, fmt.Errorf("invalid expiry %q: number out of range", s)
		}
		switch unit {
		case "S":
			dur += time.Duration(n) * time.Second
		case "M":
			dur += time.Duration(n) * time.Minute
		case "H":
			dur += time.Duration(n) * time.Hour
		case "d":
			days += n
		case "w":
			days += 7 * n
		case "m":
			months += n
		case "y":
			years += n
		}
	}
	at := from.AddDate(years, months, days).Add(dur)
	if !at.After(from) {
		return time.Time{}, fmt.Errorf("invalid expiry %q: not in the future", s)
	}
	return at, nil
}
