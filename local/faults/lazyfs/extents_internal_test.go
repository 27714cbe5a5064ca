package lazyfs

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// model is what extents stand for: a byte per offset, and which offsets
// are pending.
type model struct {
	data []byte
	set  []bool
}

func (m *model) write(off int64, data []byte) {
	for int64(len(m.data)) < off+int64(len(data)) {
		m.data = append(m.data, 0)
		m.set = append(m.set, false)
	}
	copy(m.data[off:], data)
	for i := range data {
		m.set[off+int64(i)] = true
	}
}

func (m *model) truncate(size int64) {
	for i := size; i < int64(len(m.set)); i++ {
		m.set[i] = false
	}
}

func (m *model) end() int64 {
	for i := len(m.set) - 1; i >= 0; i-- {
		if m.set[i] {
			return int64(i) + 1
		}
	}
	return 0
}

// check compares x with m, and checks x's own invariants.
func check(t *testing.T, step int, x *extents, m *model) {
	t.Helper()
	var last int64 = -1
	for _, e := range x.list {
		if len(e.data) == 0 {
			t.Fatalf("step %d: empty run at %d", step, e.off)
		}
		if e.off <= last {
			t.Fatalf("step %d: runs overlap or touch at %d (previous ends at %d)", step, e.off, last)
		}
		last = e.end()
	}
	if got, want := x.end(), m.end(); got != want {
		t.Fatalf("step %d: end %d, want %d", step, got, want)
	}
	var n int64
	for _, s := range m.set {
		if s {
			n++
		}
	}
	if got := x.bytes(); got != n {
		t.Fatalf("step %d: %d bytes pending, want %d", step, got, n)
	}
	const fill = 0xEE
	buf := bytes.Repeat([]byte{fill}, len(m.data)+8)
	x.overlay(0, buf)
	for i, b := range buf {
		want := byte(fill)
		if i < len(m.set) && m.set[i] {
			want = m.data[i]
		}
		if b != want {
			t.Fatalf("step %d: byte %d is %#x, want %#x", step, i, b, want)
		}
	}
}

// TestExtentsAgainstModel drives extents with random writes and truncates
// (fixed seed) and compares them with a byte-per-offset model after each.
func TestExtentsAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	var x extents
	m := &model{}
	for step := range 5000 {
		switch rng.IntN(10) {
		case 0:
			size := rng.Int64N(300)
			x.truncate(size)
			m.truncate(size)
		case 1:
			x.reset()
			m.truncate(0)
		default:
			off := rng.Int64N(256)
			data := make([]byte, 1+rng.IntN(40))
			for i := range data {
				data[i] = byte(rng.IntN(256))
			}
			x.write(off, data)
			m.write(off, data)
			data[0]++ // extents keep a copy
		}
		check(t, step, &x, m)
	}
}

// TestExtentsCases checks the shapes the random test may miss.
func TestExtentsCases(t *testing.T) {
	type w struct {
		off  int64
		data string
	}
	for _, tc := range []struct {
		name   string
		writes []w
		trunc  int64 // -1: none
		want   []extent
	}{
		{"ok/append-merges", []w{{0, "ab"}, {2, "cd"}, {4, "e"}}, -1, []extent{{0, []byte("abcde")}}},
		{"ok/gap-stays", []w{{0, "ab"}, {5, "cd"}}, -1, []extent{{0, []byte("ab")}, {5, []byte("cd")}}},
		{"ok/write-before-touching", []w{{5, "cd"}, {3, "ab"}}, -1, []extent{{3, []byte("abcd")}}},
		{"ok/overwrite-middle", []w{{0, "abcdef"}, {2, "XY"}}, -1, []extent{{0, []byte("abXYef")}}},
		{"ok/bridge-two", []w{{0, "ab"}, {4, "ef"}, {1, "XYZ"}}, -1, []extent{{0, []byte("aXYZef")}}},
		{"ok/cover-all", []w{{2, "ab"}, {6, "cd"}, {0, "0123456789"}}, -1, []extent{{0, []byte("0123456789")}}},
		{"ok/truncate-cuts", []w{{0, "abcdef"}, {10, "gh"}}, 3, []extent{{0, []byte("abc")}}},
		{"ok/truncate-zero", []w{{0, "abc"}}, 0, nil},
		{"ok/truncate-past-end", []w{{0, "abc"}}, 10, []extent{{0, []byte("abc")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var x extents
			for _, w := range tc.writes {
				x.write(w.off, []byte(w.data))
			}
			if tc.trunc >= 0 {
				x.truncate(tc.trunc)
			}
			if len(x.list) != len(tc.want) {
				t.Fatalf("runs %v, want %v", x.list, tc.want)
			}
			for i := range x.list {
				if x.list[i].off != tc.want[i].off || !bytes.Equal(x.list[i].data, tc.want[i].data) {
					t.Fatalf("run %d is %d:%q, want %d:%q", i, x.list[i].off, x.list[i].data, tc.want[i].off, tc.want[i].data)
				}
			}
		})
	}
}
