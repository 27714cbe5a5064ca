package natsstore

import "testing"

func TestAckSeqs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reply               string
		sseq, cseq, pending uint64
		ok                  bool
	}{
		{reply: "$JS.ACK.TRUSTLOG.c1.1.42.7.1700000000000000000.99", sseq: 42, cseq: 7, pending: 99, ok: true},
		{reply: "$JS.ACK._.ACC.TRUSTLOG.c1.1.42.7.1700000000000000000.0.tok", sseq: 42, cseq: 7, pending: 0, ok: true},
		{reply: "$JS.ACK.hub.ACC.TRUSTLOG.c1.1.43.8.1700000000000000000.5", sseq: 43, cseq: 8, pending: 5, ok: true},
		{reply: "$JS.ACK.TRUSTLOG.c1.1.x.7.1.0"},    // a sequence that is not a number
		{reply: "$JS.ACK.TRUSTLOG.c1.1.42.7.1"},     // too short
		{reply: "$JS.ACK.a.b.TRUSTLOG.c1.1.42.7.1"}, // between the two forms
		{reply: "_INBOX.x.TRUSTLOG.c1.1.42.7.1.0"},  // not an ack subject
		{reply: ""},
	} {
		sseq, cseq, pending, ok := ackSeqs(tc.reply)
		if ok != tc.ok || sseq != tc.sseq || cseq != tc.cseq || pending != tc.pending {
			t.Errorf("ackSeqs(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tc.reply, sseq, cseq, pending, ok, tc.sseq, tc.cseq, tc.pending, tc.ok)
		}
	}
}
