package events

import "fmt"

// Link is a place on the hash chain: a stored record's stream sequence and
// chain hash (Hash of its stored bytes). The zero Link stands before the
// first record.
type Link struct {
	Seq  uint64
	Hash string
}

// ChainBreak is where a stream stops being one hash chain, and why. Its
// Error text names both, for an operator.
type ChainBreak struct {
	// Seq is the sequence at fault: the record that does not chain onto its
	// predecessor, the first sequence missing, or the sequence delivered
	// twice with different content.
	Seq uint64
	// Reason says what is wrong, in lowercase words.
	Reason string
}

// Error implements error.
func (b *ChainBreak) Error() string {
	return fmt.Sprintf("events: the hash chain breaks at sequence %d: %s", b.Seq, b.Reason)
}

// CheckLink checks that a record follows last on the hash chain. next is
// the record's own link, prevHash its envelope's PrevHash and envelope
// whether its stored bytes decode as an envelope at all (Decode succeeds).
// It returns nil when the record is the next link: its sequence follows
// last's and it names last's hash as its predecessor's ("" for the first
// record). It also returns nil for a repeat of last itself with the same
// bytes, and for a repeat of an earlier sequence, whose bytes are no
// longer known; callers pass over both. Otherwise it returns the break:
//
//   - a repeat of last's sequence with other bytes;
//   - a gap: a sequence after last's other than the next (the break is
//     the first one missing);
//   - a record that is not an envelope, which names no predecessor;
//   - a PrevHash that is not last's hash.
//
// It is the one rule of the read model's fold and of the audit's
// verification, so both name the same first break.
func CheckLink(last, next Link, prevHash string, envelope bool) *ChainBreak {
	switch {
	case next.Seq < last.Seq:
		return nil
	case next.Seq == last.Seq:
		if next.Hash == last.Hash {
			return nil
		}
		return &ChainBreak{Seq: next.Seq, Reason: fmt.Sprintf("sequence %d was delivered again with different content", next.Seq)}
	case next.Seq > last.Seq+1:
		missing := fmt.Sprintf("sequence %d is missing", last.Seq+1)
		if next.Seq > last.Seq+2 {
			missing = fmt.Sprintf("sequences %d to %d are missing", last.Seq+1, next.Seq-1)
		}
		after := fmt.Sprintf("the record after %d is %d", last.Seq, next.Seq)
		if last.Seq == 0 {
			after = fmt.Sprintf("the first record is %d", next.Seq)
		}
		return &ChainBreak{Seq: last.Seq + 1, Reason: missing + ": " + after}
	case !envelope:
		return &ChainBreak{Seq: next.Seq, Reason: "the record is not a Trustlog event envelope, so it names no predecessor"}
	case prevHash != last.Hash && last.Seq == 0:
		return &ChainBreak{Seq: next.Seq, Reason: "the first event names a predecessor (its prevhash is not empty)"}
	case prevHash != last.Hash:
		return &ChainBreak{Seq: next.Seq, Reason: fmt.Sprintf("its prevhash does not match the hash of event %d", last.Seq)}
	}
	return nil
}
