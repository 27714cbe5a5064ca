package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reader reads the records of a history one at a time. It is not safe for
// concurrent use.
type Reader struct {
	r         *bufio.Reader
	line      int
	truncated bool
}

// NewReader returns a Reader of the history in r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReader(r)}
}

// Next returns the next record, or io.EOF after the last one. A last line
// that has no newline and does not decode is the remains of a write cut
// short: Next drops it, reports io.EOF and Truncated reports true. Any
// other line that does not hold exactly one record is an error naming its
// line number. Blank lines are skipped.
func (r *Reader) Next() (Record, error) {
	for {
		b, err := r.r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return Record{}, fmt.Errorf("history: %w", err)
		}
		last := err != nil // io.EOF: b is what followed the last newline
		if last && len(b) == 0 {
			return Record{}, io.EOF
		}
		r.line++
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			if last {
				return Record{}, io.EOF
			}
			continue
		}
		var rec Record
		derr := json.Unmarshal(b, &rec)
		if derr != nil && last {
			r.truncated = true
			return Record{}, io.EOF
		}
		if derr != nil {
			return Record{}, fmt.Errorf("history: line %d: %w", r.line, derr)
		}
		if rec.count() != 1 {
			return Record{}, fmt.Errorf("history: line %d: want exactly one of op, event, final", r.line)
		}
		return rec, nil
	}
}

// Truncated reports whether Next dropped a last line that was cut short.
func (r *Reader) Truncated() bool { return r.truncated }

// Read reads a whole history.
func Read(r io.Reader) (*History, error) {
	rd := NewReader(r)
	h := &History{}
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			h.Truncated = rd.Truncated()
			return h, nil
		}
		if err != nil {
			return nil, err
		}
		switch {
		case rec.Op != nil:
			h.Ops = append(h.Ops, *rec.Op)
		case rec.Event != nil:
			h.Events = append(h.Events, *rec.Event)
		case rec.Final != nil:
			h.Finals = append(h.Finals, *rec.Final)
		}
	}
}

// ReadFile reads the history in the file path.
func ReadFile(path string) (*History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	return Read(f)
}
