package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"keyhole/messages"
)

// pooled returns a frame of type t on stream id with n payload bytes in a
// pooled buffer, as a link's reader delivers it, and the frame parsed.
func pooled(t messages.Type, id messages.ID, n int, fill byte) (messages.Frame, *Buffer) {
	b := NewBuffer()
	b.B = messages.AppendHeader(b.B, t, 0, id)
	start := len(b.B)
	b.B = b.B[:start+n]
	for i := range b.B[start:] {
		b.B[start+i] = fill
	}
	f, err := messages.Parse(b.B)
	if err != nil {
		panic(err)
	}
	return f, b
}

// own returns a frame in a buffer of its own size, as Frame makes small
// ones.
func own(t messages.Type, id messages.ID, payload []byte) (messages.Frame, *Buffer) {
	b := Frame(t, 0, id, payload)
	f, err := messages.Parse(b.B)
	if err != nil {
		panic(err)
	}
	return f, b
}

var sid = messages.ID{1, 2, 3}

// TestInboxBounds: an inbox takes frames while both its frame count and
// its cost in bytes allow, and fails with ErrOverflow on the first that
// does not fit, taking nothing more afterwards.
func TestInboxBounds(t *testing.T) {
	big := Cost(messages.MaxChunk)
	small := Cost(100)
	type frame struct {
		pooled bool
		n      int
	}
	for _, tc := range []struct {
		name     string
		frames   int
		bytes    int64
		deliver  []frame
		wantFits int // frames taken before the overflow; len(deliver) for none
	}{
		{"frames: under the bound", 3, 1 << 30, []frame{{false, 1}, {false, 1}, {false, 1}}, 3},
		{"frames: one over", 3, 1 << 30, []frame{{false, 1}, {false, 1}, {false, 1}, {false, 1}}, 3},
		{"bytes: exactly full", 100, 2 * big, []frame{{true, messages.MaxChunk}, {true, messages.MaxChunk}}, 2},
		{"bytes: one byte short", 100, 2*big - 1, []frame{{true, messages.MaxChunk}, {true, messages.MaxChunk}}, 1},
		{"bytes: small frames by their own size", 100, 3 * small, []frame{{false, 100}, {false, 100}, {false, 100}, {false, 100}}, 3},
		{"bytes: a small frame alone keeps its pooled buffer", 100, big - 1, []frame{{true, 100}}, 0},
		{"bytes: a small frame after another is copied out", 100, big + small, []frame{{true, 100}, {true, 100}}, 2},
		{"bytes: large frames are never copied", 100, big + small, []frame{{true, 100}, {true, copyBelow}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewInbox(tc.frames, tc.bytes, nil)
			defer q.Release()
			for i, d := range tc.deliver {
				var f messages.Frame
				var b *Buffer
				if d.pooled {
					f, b = pooled(messages.TypeData, sid, d.n, byte(i))
				} else {
					f, b = own(messages.TypeData, sid, bytes.Repeat([]byte{byte(i)}, d.n))
				}
				ok := q.Deliver(f, b)
				if want := i < tc.wantFits; ok != want {
					t.Fatalf("frame %d: Deliver got %v, want %v", i, ok, want)
				}
				if !ok {
					break
				}
			}
			failed := tc.wantFits < len(tc.deliver)
			if err := q.Err(); failed != errors.Is(err, ErrOverflow) || (!failed && err != nil) {
				t.Errorf("got Err %v, want overflow %v", err, failed)
			}
			select {
			case <-q.Done():
				if !failed {
					t.Error("Done is closed, want it open")
				}
			default:
				if failed {
					t.Error("Done is open after an overflow")
				}
			}
			if failed {
				f, b := own(messages.TypeData, sid, nil)
				if q.Deliver(f, b) {
					t.Error("a failed inbox took another frame")
				}
			}
			if got := q.Len(); got != tc.wantFits {
				t.Errorf("got %d frames waiting, want %d", got, tc.wantFits)
			}
		})
	}
}

// TestInboxCopyOut: a small frame that arrives while others wait is
// copied into a buffer of its own size, bytes intact; the first frame,
// which a consumer keeping up takes at once, keeps its pooled buffer.
func TestInboxCopyOut(t *testing.T) {
	q := NewInbox(10, 1<<30, nil)
	defer q.Release()
	sizes := []int{100, 200, copyBelow - messages.HeaderSize, copyBelow - messages.HeaderSize + 1}
	for i, n := range sizes {
		f, b := pooled(messages.TypeData, sid, n, byte(i+1))
		if !q.Deliver(f, b) {
			t.Fatalf("frame %d refused", i)
		}
	}
	for i, n := range sizes {
		m, err := q.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantCopied := i > 0 && messages.HeaderSize+n <= copyBelow
		if copied := cap(m.B.B) < messages.MaxFrame; copied != wantCopied {
			t.Errorf("frame %d (%d bytes): copied out %v (cap %d), want %v", i, n, copied, cap(m.B.B), wantCopied)
		}
		if wantCopied && cap(m.B.B) != messages.HeaderSize+n {
			t.Errorf("frame %d: got a buffer of %d bytes, want %d", i, cap(m.B.B), messages.HeaderSize+n)
		}
		if len(m.F.Payload) != n || !bytes.Equal(m.F.Payload, bytes.Repeat([]byte{byte(i + 1)}, n)) {
			t.Errorf("frame %d: payload of %d bytes changed, want %d of %#x", i, len(m.F.Payload), n, i+1)
		}
		if n > 0 && &m.F.Payload[0] != &m.B.B[messages.HeaderSize] {
			t.Errorf("frame %d: the payload is not in the buffer handed out", i)
		}
		m.B.Free()
	}

	// A stream's last frame behind a single one keeps its buffer; behind
	// two it is copied like the rest.
	for waiting := 1; waiting <= 2; waiting++ {
		for i := 0; i < waiting; i++ {
			f, b := pooled(messages.TypeData, sid, 100, 1)
			q.Deliver(f, b)
		}
		f, b := pooled(messages.TypeData, sid, 100, 2)
		f.Flags |= messages.FlagEnd
		q.Deliver(f, b)
		var last Inbound
		for i := 0; i <= waiting; i++ {
			m, err := q.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if i == waiting {
				last = m
			} else {
				m.B.Free()
			}
		}
		if copied, want := cap(last.B.B) < messages.MaxFrame, waiting > 1; copied != want || !last.F.End() {
			t.Errorf("the last frame behind %d: copied out %v, want %v", waiting, copied, want)
		}
		last.B.Free()
	}
}

// TestInboxCredit: with a window, Credit frames go to it and never queue
// (a malformed one is dropped); without one they queue like any frame.
func TestInboxCredit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		window    bool
		payload   []byte
		wantQueue int
		wantAvail int64
	}{
		{"window: credit added", true, messages.AppendCredit(nil, 5000), 0, 5000},
		{"window: zero credit", true, messages.AppendCredit(nil, 0), 0, 0},
		{"window: malformed credit dropped", true, []byte{1, 2, 3}, 0, 0},
		{"no window: credit queued", false, messages.AppendCredit(nil, 5000), 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w *Window
			if tc.window {
				w = NewWindow(0)
			}
			q := NewInbox(1, 1<<20, w)
			defer q.Release()
			if q.Window() != w {
				t.Fatal("Window() is not the window given")
			}
			f, b := own(messages.TypeCredit, sid, tc.payload)
			if !q.Deliver(f, b) {
				t.Fatal("Deliver refused a Credit frame")
			}
			if got := q.Len(); got != tc.wantQueue {
				t.Errorf("got %d frames queued, want %d", got, tc.wantQueue)
			}
			if tc.window {
				if got := avail(w); got != tc.wantAvail {
					t.Errorf("got %d credit, want %d", got, tc.wantAvail)
				}
				// A window's credit takes no room: the one slot is free.
				f, b := own(messages.TypeData, sid, nil)
				if !q.Deliver(f, b) {
					t.Error("a Data frame after the Credit overflowed a one-frame inbox")
				}
				return
			}
			m, err := q.Next(context.Background())
			if err != nil || m.F.Type != messages.TypeCredit {
				t.Fatalf("got %v, %v; want the Credit frame", m.F.Type, err)
			}
			m.B.Free()
		})
	}
}

// TestInboxFail: frames queued before a failure still come out, in
// order, then the error; the first failure is the one reported.
func TestInboxFail(t *testing.T) {
	first, second := errors.New("link lost"), errors.New("later")
	for _, queued := range []int{0, 1, 3} {
		t.Run(map[int]string{0: "nothing queued", 1: "one queued", 3: "three queued"}[queued], func(t *testing.T) {
			q := NewInbox(10, 1<<20, nil)
			for i := 0; i < queued; i++ {
				f, b := own(messages.TypeData, sid, []byte{byte(i)})
				q.Deliver(f, b)
			}
			q.Fail(first)
			q.Fail(second)
			select {
			case <-q.Done():
			default:
				t.Fatal("Done is open after Fail")
			}
			f, b := own(messages.TypeData, sid, []byte{0xff})
			if q.Deliver(f, b) {
				t.Error("Deliver after Fail got true, want false")
			}
			for i := 0; i < queued; i++ {
				m, err := q.Next(context.Background())
				if err != nil {
					t.Fatalf("frame %d: got %v, want the frame queued before the failure", i, err)
				}
				if m.F.Payload[0] != byte(i) {
					t.Errorf("frame %d: got payload %d, want %d", i, m.F.Payload[0], i)
				}
				m.B.Free()
			}
			for i := 0; i < 2; i++ {
				if _, err := q.Next(context.Background()); err != first {
					t.Errorf("Next after the queued frames: got %v, want %v", err, first)
				}
			}
			if err := q.Err(); err != first {
				t.Errorf("got Err %v, want %v", err, first)
			}
		})
	}
}

// TestInboxNextWaits: Next waits for a frame, wakes when one is
// delivered or the inbox fails, and ends with the context's cause, or
// with NextBefore's error when its expiry fires first.
func TestInboxNextWaits(t *testing.T) {
	cause := errors.New("stream canceled")
	expired := errors.New("too late")
	type ends struct {
		cancel context.CancelCauseFunc
		expiry chan time.Time
	}
	for _, tc := range []struct {
		name string
		act  func(q *Inbox, e ends)
		want error
	}{
		{"a frame arrives", func(q *Inbox, _ ends) {
			f, b := own(messages.TypeData, sid, []byte("x"))
			q.Deliver(f, b)
		}, nil},
		{"the inbox fails", func(q *Inbox, _ ends) { q.Fail(ErrOverflow) }, ErrOverflow},
		{"ctx is canceled", func(_ *Inbox, e ends) { e.cancel(cause) }, cause},
		{"the expiry fires", func(_ *Inbox, e ends) { e.expiry <- time.Now() }, expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewInbox(10, 1<<20, nil)
			defer q.Release()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			e := ends{cancel, make(chan time.Time, 1)}
			type result struct {
				m   Inbound
				err error
			}
			got := make(chan result, 1)
			go func() {
				m, err := q.NextBefore(ctx, e.expiry, expired)
				got <- result{m, err}
			}()
			select {
			case r := <-got:
				t.Fatalf("Next on an empty inbox returned %v", r.err)
			case <-time.After(blocked):
			}
			tc.act(q, e)
			select {
			case r := <-got:
				if r.err != tc.want {
					t.Errorf("got %v, want %v", r.err, tc.want)
				}
				if tc.want == nil {
					if string(r.m.F.Payload) != "x" {
						t.Errorf("got payload %q, want %q", r.m.F.Payload, "x")
					}
					r.m.B.Free()
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Next still waits")
			}
		})
	}
}

// TestInboxReleaseFrees: Release empties the inbox and returns every
// pooled buffer. Filling and releasing an inbox of whole-frame buffers
// many times then allocates far less than keeping them would: the pool
// hands the same buffers back. (The race detector makes the pool drop a
// quarter of what it is given, so the bound is half.)
func TestInboxReleaseFrees(t *testing.T) {
	const rounds, frames = 100, 8
	allocated := func(release bool) uint64 {
		runtime.GC()
		runtime.GC() // the pool's victims too: start with an empty pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for r := 0; r < rounds; r++ {
			q := NewInbox(frames, 1<<30, nil)
			for i := 0; i < frames; i++ {
				f, b := pooled(messages.TypeData, sid, messages.MaxChunk, 1)
				q.Deliver(f, b)
			}
			if release {
				q.Release()
				if q.Len() != 0 || q.queued != 0 {
					t.Fatalf("after Release: %d frames, %d bytes still queued", q.Len(), q.queued)
				}
			}
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	kept := allocated(false)
	released := allocated(true)
	if released > kept/2 {
		t.Errorf("got %d bytes allocated with Release, want at most half of the %d without", released, kept)
	}
}

// produce delivers n frames to q, each within a credit of w, the ith
// carrying i (see indexOf): every pooledEvery-th in a pooled buffer (if
// not 0), the rest in buffers of their own. It sends what ended it.
func produce(ctx context.Context, q *Inbox, w *Window, n, pooledEvery int) <-chan error {
	return produceWhen(ctx, q, w, n, pooledEvery, nil)
}

// produceWhen is produce that, before each frame i, calls stop(i) (when
// not nil), and stops with an error if it reports true.
func produceWhen(ctx context.Context, q *Inbox, w *Window, n, pooledEvery int, stop func(i int) bool) <-chan error {
	produced := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := w.Acquire(ctx, q.Done(), 1); err != nil {
				produced <- err
				return
			}
			if stop != nil && stop(i) {
				produced <- fmt.Errorf("frame %d: the consumer never waited on an empty inbox", i)
				return
			}
			p := [4]byte{byte(i), byte(i >> 8), byte(i >> 16)}
			var f messages.Frame
			var b *Buffer
			if pooledEvery > 0 && i%pooledEvery == 0 {
				f, b = pooled(messages.TypeData, sid, 0, 0)
				b.B = append(b.B, p[:]...)
				f.Payload = b.B[messages.HeaderSize:]
			} else {
				f, b = own(messages.TypeData, sid, p[:])
			}
			if !q.Deliver(f, b) {
				produced <- q.Err()
				return
			}
			if i%64 == 0 {
				runtime.Gosched()
			}
		}
		produced <- nil
	}()
	return produced
}

// consumerWaits waits until q's consumer waits on an empty inbox, and
// reports whether it did before ctx ended.
func (q *Inbox) consumerWaits(ctx context.Context) bool {
	for {
		q.mu.Lock()
		waits := q.waiting && q.head == len(q.q)
		q.mu.Unlock()
		if waits {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Microsecond):
		}
	}
}

// indexOf is the number produce put in a frame.
func indexOf(f messages.Frame) int {
	return int(f.Payload[0]) | int(f.Payload[1])<<8 | int(f.Payload[2])<<16
}

// TestInboxConcurrent: one producer and one consumer, the producer kept
// inside a small inbox by a window the consumer refills: every frame
// comes out once, in order, and nothing overflows. Run it with -race.
func TestInboxConcurrent(t *testing.T) {
	const n, window = 20000, 8
	w := NewWindow(window)
	q := NewInbox(window, 1<<30, nil)
	defer q.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produced := produce(ctx, q, w, n, 3)
	for i := 0; i < n; i++ {
		m, err := q.Next(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got := indexOf(m.F)
		m.B.Free()
		if got != i {
			t.Fatalf("got frame %d, want %d", got, i)
		}
		w.Add(1)
	}
	if err := <-produced; err != nil {
		t.Fatalf("producer: %v", err)
	}
	if q.Len() != 0 {
		t.Errorf("got %d frames left, want 0", q.Len())
	}
}

// TestInboxWiden: a widened inbox takes what the wider window lets the
// peer send, and still overflows one frame past it.
func TestInboxWiden(t *testing.T) {
	big := Cost(messages.MaxChunk)
	q := NewInbox(100, 2*big, nil)
	defer q.Release()
	deliver := func() bool {
		f, b := pooled(messages.TypeData, sid, messages.MaxChunk, 1)
		return q.Deliver(f, b)
	}
	for i := range 2 {
		if !deliver() {
			t.Fatalf("frame %d: the inbox refused what fits its bound", i)
		}
	}
	q.Widen(big)
	if !deliver() {
		t.Fatal("a widened inbox refused a frame within its new bound")
	}
	if deliver() {
		t.Error("a widened inbox took a frame past its new bound")
	}
	if !errors.Is(q.Err(), ErrOverflow) {
		t.Errorf("got Err %v, want ErrOverflow", q.Err())
	}
}

// TestInboxInline: a frame that arrives while the consumer waits on an
// empty inbox goes to the inline function, which either deals with it or
// hands it back, possibly changed, to be queued. Inline and consumer see
// every frame once, in order, and take turns: they share a slice without
// a lock, which the race detector would catch. With a busy consumer,
// frames queue; after SetInline(nil) no frame goes inline.
func TestInboxInline(t *testing.T) {
	const n, window = 20000, 16
	w := NewWindow(window)
	q := NewInbox(window, 1<<30, nil)
	defer q.Release()
	var seen []int // by inline and consumer, in turn
	var inlined, handed int
	q.SetInline(func(m *Inbound) bool {
		i := indexOf(m.F)
		if i%5 == 0 {
			m.F.Payload[3] = 0xee // handed back, marked
			handed++
			return false
		}
		seen = append(seen, i)
		inlined++
		m.B.Free()
		w.Add(1)
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every 64th frame and the one after it wait until the consumer
	// waits on an empty inbox, so that some frames are sure to be
	// offered inline, and some of those handed back, however the two
	// goroutines happen to be scheduled.
	produced := produceWhen(ctx, q, w, n, 0, func(i int) bool { return i%64 < 2 && !q.consumerWaits(ctx) })
	var queued, marked int
	for len(seen) < n {
		m, err := q.Next(ctx)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(seen), err)
		}
		i := indexOf(m.F)
		if m.F.Payload[3] == 0xee {
			marked++
		}
		m.B.Free()
		seen = append(seen, i)
		queued++
		w.Add(1)
		if queued%7 == 0 {
			time.Sleep(10 * time.Microsecond) // a busy consumer: frames queue
		}
	}
	if err := <-produced; err != nil {
		t.Fatalf("producer: %v", err)
	}
	for i, got := range seen {
		if got != i {
			t.Fatalf("frame %d came as the %dth", got, i)
		}
	}
	if inlined == 0 || queued == 0 || handed == 0 {
		t.Errorf("%d frames inline, %d handed back and %d queued: want some of each", inlined, handed, queued)
	}
	if marked != handed {
		t.Errorf("%d frames came as inline handed them back, want %d", marked, handed)
	}

	q.SetInline(func(*Inbound) bool { t.Error("inline after SetInline(nil)"); return false })
	q.SetInline(nil)
	done := make(chan Inbound)
	go func() {
		m, _ := q.Next(ctx)
		done <- m
	}()
	time.Sleep(blocked)
	f, b := own(messages.TypeData, sid, []byte("last"))
	q.Deliver(f, b)
	if m := <-done; string(m.F.Payload) != "last" {
		t.Errorf("got %q, want the frame queued", m.F.Payload)
	} else {
		m.B.Free()
	}
}

// TestInboxSetInlineWaits: SetInline(nil) returns only once an inline run
// that had begun has returned.
func TestInboxSetInlineWaits(t *testing.T) {
	q := NewInbox(10, 1<<20, nil)
	defer q.Release()
	entered, release := make(chan struct{}), make(chan struct{})
	q.SetInline(func(m *Inbound) bool {
		close(entered)
		<-release
		m.B.Free()
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	go q.Next(ctx) // the consumer waits
	defer cancel()
	for q.Len() == 0 && !func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.waiting }() {
		time.Sleep(time.Millisecond)
	}
	go func() {
		f, b := own(messages.TypeData, sid, []byte("x"))
		q.Deliver(f, b)
	}()
	<-entered
	stopped := make(chan struct{})
	go func() {
		q.SetInline(nil)
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("SetInline(nil) returned while inline ran")
	case <-time.After(blocked):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("SetInline(nil) still waits after inline returned")
	}
}
