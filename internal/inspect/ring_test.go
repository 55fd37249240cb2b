package inspect

import (
	"slices"
	"testing"
)

func TestRingKeepsTheLatest(t *testing.T) {
	r := newRing(3)
	for range 5 {
		r.add(&entry{})
	}
	var ids []uint64
	for _, e := range r.newest(0) {
		ids = append(ids, e.id)
	}
	if want := []uint64{5, 4, 3}; !slices.Equal(ids, want) {
		t.Errorf("newest: got ids %v, want %v", ids, want)
	}
	if got := r.newest(2); len(got) != 2 || got[0].id != 5 {
		t.Errorf("newest(2): got %d entries, want 2 from id 5", len(got))
	}
	for _, c := range []struct {
		id   uint64
		kept bool
	}{{0, false}, {1, false}, {2, false}, {3, true}, {5, true}, {6, false}} {
		e := r.get(c.id)
		if (e != nil) != c.kept || e != nil && e.id != c.id {
			t.Errorf("get(%d): got %v, want kept %v", c.id, e, c.kept)
		}
	}
}

func TestCaptureKeepsTheCapAndCountsAll(t *testing.T) {
	var c capture
	for _, p := range []string{"hello ", "world, ", "and more"} {
		c.add([]byte(p), 10, -1)
	}
	if string(c.buf) != "hello worl" || c.size != 21 {
		t.Errorf("got %q of %d bytes, want %q of 21", c.buf, c.size, "hello worl")
	}
	v := viewBody(c.snapshot())
	if !v.Truncated || v.Size != 21 || v.Text == nil || *v.Text != "hello worl" {
		t.Errorf("view: got %+v, want truncated text of 21 bytes", v)
	}
	if v := viewBody(capture{buf: []byte{0xff, 0}, size: 2}); v.Text != nil || v.Truncated {
		t.Errorf("binary view: got %+v, want no text, not truncated", v)
	}
}
