package inspect

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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

func TestWebSocketMessagesStayWithinBounds(t *testing.T) {
	var w wsMessages
	var ways [2]wsWay
	piece := func(fromService, text bool, p []byte, end bool) {
		kept, at := ways[wayOf(fromService)].take(p, end, 8)
		w.piece(fromService, text, len(p), kept, at, end, 3, 20)
	}
	// A message in two pieces, over the cap of 8 bytes: counted whole,
	// its first 8 bytes kept.
	piece(false, true, []byte("hello "), false)
	piece(true, false, []byte{1, 2}, true) // the other way, meanwhile
	piece(false, true, []byte("world"), true)
	got := w.list()
	if len(got) != 2 || !got[0].fromService || string(got[1].body.buf) != "hello wo" || got[1].body.size != 11 {
		t.Fatalf("got %+v, want the 2-byte binary message, then 8 of 11 bytes of text", got)
	}
	// More than 3 messages, or more than 20 bytes, forget the oldest:
	// "bbbbbbbb" makes four (the binary one goes) and 24 bytes ("hello
	// wo" goes too).
	for _, m := range []string{"aaaaaaaa", "bbbbbbbb", "cc"} {
		piece(false, true, []byte(m), true)
	}
	var kept []string
	for _, m := range w.list() {
		kept = append(kept, string(m.body.buf))
	}
	if want := []string{"aaaaaaaa", "bbbbbbbb", "cc"}; !slices.Equal(kept, want) || w.count() != 5 || w.bytes != 18 {
		t.Errorf("got %q of %d messages, %d bytes; want %q of 5, 18 bytes", kept, w.count(), w.bytes, want)
	}
}

// TestWebSocketRecordingReusesUnseenBytes: a busy socket records its
// messages without allocating once its history is full, by copying each
// new message into the bytes of one forgotten unseen; bytes the API has
// handed out are never written again.
func TestWebSocketRecordingReusesUnseenBytes(t *testing.T) {
	in := New(Options{Messages: 4})
	req := httptest.NewRequest("GET", "/ws", nil)
	tap, _ := in.WebSocketTap("t")(req, &http.Response{StatusCode: http.StatusSwitchingProtocols, Header: http.Header{}})
	msg := bytes.Repeat([]byte("x"), 1024)
	for range 16 {
		tap(false, true, msg, true)
	}
	if n := testing.AllocsPerRun(200, func() { tap(false, true, msg, true) }); n != 0 {
		t.Errorf("recording a message allocated %v times, want 0", n)
	}

	e := in.ring.newest(1)[0]
	e.mu.Lock()
	shown := e.ws.list() // hands the four kept messages' bytes out, as detail does
	e.mu.Unlock()
	for i := range 8 {
		tap(true, false, []byte{byte(i), 1, 2, 3}, true)
	}
	for i, m := range shown {
		if !bytes.Equal(m.body.buf, msg) {
			t.Fatalf("message %d handed out before was overwritten: %q", i, m.body.buf[:8])
		}
	}
}

// get sends one request through rt and reads its answer whole.
func get(t *testing.T, rt http.RoundTripper) {
	t.Helper()
	req := httptest.NewRequest("GET", "http://127.0.0.1:3000/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestRecordingReusesForgottenBodies: once the ring is full, a request
// records its answer in the room of the entry it pushes out, so a busy
// tunnel does not allocate room for each body; a body the API has shown
// is never written again, and a forgotten entry whose answer is still
// being read keeps its own.
func TestRecordingReusesForgottenBodies(t *testing.T) {
	body := bytes.Repeat([]byte("a"), 1024)
	in := New(Options{Requests: 4})
	rt := in.Transport("t", canned{body: body})
	for range 8 {
		get(t, rt)
	}
	allocs := func(rt http.RoundTripper) float64 {
		return testing.AllocsPerRun(100, func() { get(t, rt) })
	}
	// Against the same exchange with each forgotten entry kept from
	// reuse: the room for the body and for the header copy are saved.
	reusing := allocs(rt)
	keep := New(Options{Requests: 4})
	krt := keep.Transport("t", canned{body: body})
	for range 8 {
		get(t, krt)
	}
	notReusing := testing.AllocsPerRun(100, func() {
		for _, e := range keep.ring.slots {
			e.mu.Lock()
			e.done = false // not finished: never reused
			e.mu.Unlock()
		}
		get(t, krt)
	})
	if reusing > notReusing-2 {
		t.Errorf("a request allocated %v times with reuse, %v without; want at least 2 fewer", reusing, notReusing)
	}
	if testing.Verbose() {
		t.Logf("allocations per request: %v with reuse, %v without", reusing, notReusing)
	}

	// Shown bytes stay as they were.
	shown := in.ring.newest(1)[0].detail()
	before := string(shown.ResponseBody.Base64) // a copy
	rt2 := in.Transport("t", canned{body: bytes.Repeat([]byte("b"), 1024)})
	for range 8 {
		get(t, rt2)
	}
	if got := string(shown.ResponseBody.Base64); got != before || before != string(body) {
		t.Errorf("a body shown before was overwritten: %.8q…", got)
	}

	// An answer still being read when its entry is pushed out keeps its
	// bytes: the requests after it do not take them.
	slow := in.Transport("t", canned{body: bytes.Repeat([]byte("c"), 1024)})
	resp, err := slow.RoundTrip(httptest.NewRequest("GET", "http://127.0.0.1:3000/slow", nil))
	if err != nil {
		t.Fatal(err)
	}
	half := make([]byte, 512)
	io.ReadFull(resp.Body, half)
	pending := in.ring.newest(1)[0]
	for range 8 {
		get(t, rt2) // pushes the slow one out, and reuses what it may
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pending.mu.Lock()
	got := string(pending.respBody.buf)
	pending.mu.Unlock()
	if got != strings.Repeat("c", 1024) {
		t.Errorf("the pushed-out entry still being read recorded %.8q… (%d bytes), want its own 1024 bytes of c", got, len(got))
	}
	for _, e := range in.ring.newest(0) {
		if d := e.detail(); string(d.ResponseBody.Base64) != strings.Repeat("b", 1024) {
			t.Errorf("entry %d recorded %.8q… (%d bytes), want 1024 bytes of b", d.ID, d.ResponseBody.Base64, len(d.ResponseBody.Base64))
		}
	}
}
