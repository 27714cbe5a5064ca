package expiry_test

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST case needs America/New_York on any machine

	"github.com/trustlog/trustlog/functions/expiry"
)

func TestParse(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
	leap := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-03-08 is the spring-forward day in New York: 23 hours long.
	beforeDST := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	for _, tc := range []struct {
		name string
		in   string
		from time.Time
		want time.Time // zero: invalid
	}{
		{"ok/seconds", "5S", from, from.Add(5 * time.Second)},
		{"ok/minutes", "1M", from, from.Add(time.Minute)},
		{"ok/hours", "2H", from, from.Add(2 * time.Hour)},
		{"ok/day", "1d", from, time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)},
		{"ok/week", "1w", from, time.Date(2026, 2, 7, 10, 0, 0, 0, time.UTC)},
		// Calendar arithmetic: 31 January + 1 month is "31 February",
		// which normalises to 3 March in a common year.
		{"ok/month-from-jan-31", "1m", from, time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)},
		{"ok/month", "1m", time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)},
		{"ok/year", "1y", from, time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC)},
		{"ok/year-from-leap-day", "1y", leap, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)},
		{"ok/day-and-hours", "1d 12H", from, time.Date(2026, 2, 1, 22, 0, 0, 0, time.UTC)},
		{"ok/order-free", "12H 1d", from, time.Date(2026, 2, 1, 22, 0, 0, 0, time.UTC)},
		{"ok/every-unit", "1y 1m 1w 1d 1H 1M 1S", from, time.Date(2027, 3, 11, 11, 1, 1, 0, time.UTC)},
		{"ok/weeks-and-days-add", "1w 1d", from, time.Date(2026, 2, 8, 10, 0, 0, 0, time.UTC)},
		{"ok/extra-spaces", "  1d   2H ", from, time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)},
		{"ok/zero-term-with-positive", "0d 1S", from, from.Add(time.Second)},
		{"ok/leading-zeros", "007S", from, from.Add(7 * time.Second)},
		// A day is a calendar day: across the DST change it keeps the wall
		// clock and lasts 23 hours; 24H lasts 24 hours.
		{"ok/day-across-dst", "1d", beforeDST, time.Date(2026, 3, 8, 12, 0, 0, 0, ny)},
		{"ok/hours-across-dst", "24H", beforeDST, time.Date(2026, 3, 8, 13, 0, 0, 0, ny)},
		{"ok/large", "100000y", from, time.Date(102026, 1, 31, 10, 0, 0, 0, time.UTC)},

		{"fail/empty", "", from, time.Time{}},
		{"fail/blank", "   ", from, time.Time{}},
		{"fail/no-unit", "5", from, time.Time{}},
		{"fail/lowercase-seconds", "5s", from, time.Time{}},
		{"fail/uppercase-day", "1D", from, time.Time{}},
		{"fail/negative", "-1d", from, time.Time{}},
		{"fail/plus-sign", "+1d", from, time.Time{}},
		{"fail/unknown-unit", "1x", from, time.Time{}},
		{"fail/unit-only", "d", from, time.Time{}},
		{"fail/fraction", "1.5d", from, time.Time{}},
		{"fail/comma", "1d,2H", from, time.Time{}},
		{"fail/space-inside-term", "1 d", from, time.Time{}},
		{"fail/unit-twice", "1d 2d", from, time.Time{}},
		{"fail/unit-twice-apart", "1S 1d 1S", from, time.Time{}},
		{"fail/zero-seconds-not-in-future", "0S", from, time.Time{}},
		{"fail/all-zero", "0d 0H", from, time.Time{}},
		{"fail/too-large", "100001d", from, time.Time{}},
		{"fail/overflows-int", "99999999999999999999S", from, time.Time{}},
		{"fail/go-duration", "1h30m", from, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := expiry.Parse(tc.in, tc.from)
			if tc.want.IsZero() {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), expiry.Units) {
					t.Fatalf("Parse(%q): error %q does not list the units", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !got.Equal(tc.want) {
				t.Fatalf("Parse(%q, %v) = %v, want %v", tc.in, tc.from, got, tc.want)
			}
		})
	}
}
