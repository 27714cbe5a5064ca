package lazyfs

// extent is a run of pending bytes at offset off.
type extent struct {
	off  int64
	data []byte
}

func (e extent) end() int64 { return e.off + int64(len(e.data)) }

// extents are the bytes written to one file since its last sync: sorted by
// offset, never overlapping, never empty. A later write replaces what it
// overlaps. The zero value holds nothing. Not safe for concurrent use.
type extents struct {
	list []extent
}

// write records data at off, replacing any pending bytes it covers and
// merging with a run that ends where it starts (appends stay one run).
func (x *extents) write(off int64, data []byte) {
	if len(data) == 0 {
		return
	}
	end := off + int64(len(data))
	out := make([]extent, 0, len(x.list)+2)
	inserted := false
	for _, e := range x.list {
		switch {
		case e.end() < off:
			out = append(out, e)
			continue
		case e.off > end:
			if !inserted {
				out = x.place(out, off, data)
				inserted = true
			}
			out = append(out, e)
			continue
		}
		// e touches or overlaps [off, end): keep what lies outside.
		if e.off < off {
			out = append(out, extent{off: e.off, data: e.data[:off-e.off]})
		}
		if !inserted {
			out = x.place(out, off, data)
			inserted = true
		}
		if e.end() > end {
			tail := e.data[end-e.off:]
			last := &out[len(out)-1]
			last.data = append(last.data, tail...)
		}
	}
	if !inserted {
		out = x.place(out, off, data)
	}
	x.list = out
}

// place appends a copy of data at off to out, merged with out's last run
// when that run ends exactly at off.
func (x *extents) place(out []extent, off int64, data []byte) []extent {
	if n := len(out); n > 0 && out[n-1].end() == off {
		out[n-1].data = append(out[n-1].data, data...)
		return out
	}
	return append(out, extent{off: off, data: append([]byte(nil), data...)})
}

// truncate drops every pending byte at or past size.
func (x *extents) truncate(size int64) {
	out := x.list[:0]
	for _, e := range x.list {
		switch {
		case e.off >= size:
		case e.end() > size:
			out = append(out, extent{off: e.off, data: e.data[:size-e.off]})
		default:
			out = append(out, e)
		}
	}
	clear(x.list[len(out):])
	x.list = out
}

// end is the offset just past the last pending byte, 0 if none.
func (x *extents) end() int64 {
	if len(x.list) == 0 {
		return 0
	}
	return x.list[len(x.list)-1].end()
}

// bytes is how many bytes are pending.
func (x *extents) bytes() int64 {
	var n int64
	for _, e := range x.list {
		n += int64(len(e.data))
	}
	return n
}

// overlay copies the pending bytes that fall in [off, off+len(buf)) over buf.
func (x *extents) overlay(off int64, buf []byte) {
	end := off + int64(len(buf))
	for _, e := range x.list {
		if e.end() <= off || e.off >= end {
			continue
		}
		from, to := max(e.off, off), min(e.end(), end)
		copy(buf[from-off:to-off], e.data[from-e.off:to-e.off])
	}
}

// reset forgets every pending byte.
func (x *extents) reset() { x.list = nil }
