// Package expiry parses the expiry grammar of LXD and Incus, the one of
// core.remote_token_expiry: space-separated terms of a number and a unit,
// such as "1d 12H". The server reads token lifetimes with it and the CLI
// the lifetime of the bearer tokens it signs, so that one string means
// the same thing everywhere ("30m" is thirty months, "30M" thirty minutes).
package expiry

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Units lists the units of the grammar, as error messages show them.
const Units = "S seconds, M minutes, H hours, d days, w weeks, m months, y years"

// maxNumber bounds the number of one term.
const maxNumber = 100000

var term = regexp.MustCompile(`^(\d+)(S|M|H|d|w|m|y)$`)

// Parse validates an expiry (space-separated terms such as "1d 12H", each
// unit at most once) and returns the instant it names after from. Days,
// weeks, months and years are calendar arithmetic in from's location; the
// instant must be after from. Errors name the valid units.
func Parse(s string, from time.Time) (time.Time, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return time.Time{}, invalid(s, "empty")
	}
	seen := map[string]bool{}
	var years, months, days int
	var dur time.Duration
	for _, f := range fields {
		m := term.FindStringSubmatch(f)
		if m == nil {
			return time.Time{}, invalid(s, fmt.Sprintf("bad term %q", f))
		}
		unit := m[2]
		if seen[unit] {
			return time.Time{}, invalid(s, fmt.Sprintf("unit %q given twice", unit))
		}
		seen[unit] = true
		n, err := strconv.Atoi(m[1])
		if err != nil || n > maxNumber {
			return time.Time{}, invalid(s, fmt.Sprintf("number out of range (at most %d)", maxNumber))
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
		return time.Time{}, invalid(s, "not in the future")
	}
	return at, nil
}

// invalid is the error for expiry s, with the reason and the grammar.
func invalid(s, why string) error {
	return fmt.Errorf("invalid expiry %q: %s (a number and a unit per term: %s; for example \"1d 12H\")", s, why, Units)
}
