package events_test

import (
	"testing"

	"github.com/trustlog/trustlog/events"
)

func TestCheckLink(t *testing.T) {
	t.Parallel()
	a, b := events.Link{Seq: 4, Hash: "h4"}, events.Link{Seq: 5, Hash: "h5"}
	tests := []struct {
		name     string
		last     events.Link
		next     events.Link
		prev     string
		envelope bool
		want     *events.ChainBreak
	}{
		{name: "ok/first record", next: events.Link{Seq: 1, Hash: "h1"}, envelope: true},
		{name: "ok/next record", last: a, next: b, prev: "h4", envelope: true},
		{name: "ok/the last record again", last: b, next: b, envelope: true},
		{name: "ok/the last record again, not decoded", last: b, next: b},
		{name: "ok/an earlier sequence again", last: b, next: events.Link{Seq: 2, Hash: "other"}, envelope: true},
		{name: "fail/the last sequence again with other content", last: b, next: events.Link{Seq: 5, Hash: "other"}, prev: "h4", envelope: true,
			want: &events.ChainBreak{Seq: 5, Reason: "sequence 5 was delivered again with different content"}},
		{name: "fail/one missing", last: a, next: events.Link{Seq: 6, Hash: "h6"}, prev: "h5", envelope: true,
			want: &events.ChainBreak{Seq: 5, Reason: "sequence 5 is missing: the record after 4 is 6"}},
		{name: "fail/several missing", last: a, next: events.Link{Seq: 9, Hash: "h9"}, prev: "h8", envelope: true,
			want: &events.ChainBreak{Seq: 5, Reason: "sequences 5 to 8 are missing: the record after 4 is 9"}},
		{name: "fail/missing from the start", next: events.Link{Seq: 3, Hash: "h3"}, prev: "h2", envelope: true,
			want: &events.ChainBreak{Seq: 1, Reason: "sequences 1 to 2 are missing: the first record is 3"}},
		{name: "fail/not an envelope", last: a, next: b,
			want: &events.ChainBreak{Seq: 5, Reason: "the record is not a Trustlog event envelope, so it names no predecessor"}},
		{name: "fail/prevhash of another event", last: a, next: b, prev: "h3", envelope: true,
			want: &events.ChainBreak{Seq: 5, Reason: "its prevhash does not match the hash of event 4"}},
		{name: "fail/empty prevhash after the first", last: a, next: b, envelope: true,
			want: &events.ChainBreak{Seq: 5, Reason: "its prevhash does not match the hash of event 4"}},
		{name: "fail/first record names a predecessor", next: events.Link{Seq: 1, Hash: "h1"}, prev: "h0", envelope: true,
			want: &events.ChainBreak{Seq: 1, Reason: "the first event names a predecessor (its prevhash is not empty)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := events.CheckLink(tt.last, tt.next, tt.prev, tt.envelope)
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Errorf("CheckLink(%+v, %+v, %q, %v) = %+v, want %+v", tt.last, tt.next, tt.prev, tt.envelope, got, tt.want)
			}
		})
	}
	brk := events.ChainBreak{Seq: 7, Reason: "sequence 7 is missing: the record after 6 is 8"}
	if got, want := brk.Error(), "events: the hash chain breaks at sequence 7: sequence 7 is missing: the record after 6 is 8"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
