package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Writer appends records to a history. It is safe for concurrent use: each
// record is one line, written with one call to the underlying writer and
// never interleaved with another. It buffers nothing.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	c   io.Closer // nil unless the Writer opened the file
	err error     // the first write error; later writes return it
}

// NewWriter returns a Writer appending to w. Close does not close w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Create creates the file path (which must not exist) and returns a Writer
// appending to it.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return &Writer{w: f, c: f}, nil
}

// Op records an operation once it has completed. It returns an error for
// an invalid operation (Op.Validate) or a failed write.
func (w *Writer) Op(op Op) error {
	if err := op.Validate(); err != nil {
		return err
	}
	return w.write(Record{Op: &op})
}

// Event records an event. It returns an error for an invalid event
// (Event.Validate) or a failed write.
func (w *Writer) Event(e Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return w.write(Record{Event: &e})
}

// Final records a node's final state. It returns an error for a failed
// write.
func (w *Writer) Final(f Final) error {
	if f.Node == "" {
		return errors.New("history: final state without a node")
	}
	return w.write(Record{Final: &f})
}

// write appends r as one line. After a failed write every later one fails
// with the same error, so that a history has no holes.
func (w *Writer) write(r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if _, err := w.w.Write(line); err != nil {
		w.err = fmt.Errorf("history: %w", err)
		return w.err
	}
	return nil
}

// Close closes the file a Writer made with Create opened; for one made
// with NewWriter it does nothing. Records written after Close fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = errors.New("history: writer closed")
	}
	if w.c == nil {
		return nil
	}
	c := w.c
	w.c = nil
	return c.Close()
}
