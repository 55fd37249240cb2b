package link

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"keyhole/messages"
)

// writes counts the writer's system calls on a real TCP connection: each
// writeFrames sets the write deadline once and then writes every frame
// of its batch with one writev (the socket's WriteBuffers).
type writes struct {
	net.Conn
	n atomic.Int32
}

func (w *writes) SetWriteDeadline(t time.Time) error {
	w.n.Add(1)
	return w.Conn.SetWriteDeadline(t)
}

// TestConnWriterBatches: frames waiting in the queue go out together, at
// most maxBatch to a write, in order.
func TestConnWriterBatches(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queued     int
		wantWrites int32
	}{
		{"one frame", 1, 1},
		{"several frames, one write", 5, 1},
		{"a full batch", maxBatch, 1},
		{"one over a batch", maxBatch + 1, 2},
		{"three batches", 3 * maxBatch, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine, peer := ends(t, true)
			c := newLink(mine, Options{Client: true, Queue: 128})
			w := &writes{Conn: c.nc}
			c.nc = w
			for i := 0; i < tc.queued; i++ { // queued before the writer starts
				if !c.TrySend(numbered(i)) {
					t.Fatalf("frame %d refused", i)
				}
			}
			ended := run(context.Background(), c, discard)
			defer func() { c.Close(nil); <-ended }()
			for i := 0; i < tc.queued; i++ {
				if f := readFrom(t, peer); f.ID != idOf(i) {
					t.Fatalf("frame %d: got id %v, want %v", i, f.ID, idOf(i))
				}
			}
			if got := w.n.Load(); got != tc.wantWrites {
				t.Errorf("got %d writes for %d queued frames, want %d", got, tc.queued, tc.wantWrites)
			}
		})
	}
}

// TestConnLimiter: a Limiter paces the frames read from the peer, none
// dropped: past its burst they arrive no faster than its rate.
func TestConnLimiter(t *testing.T) {
	const n = 11
	for _, tc := range []struct {
		name    string
		limiter *rate.Limiter
		atLeast time.Duration
		atMost  time.Duration
	}{
		{"50 a second, burst 1", rate.NewLimiter(50, 1), (n - 1) * 20 * time.Millisecond * 9 / 10, time.Minute},
		{"1 a second, burst of them all", rate.NewLimiter(1, n), 0, 5 * time.Second},
		{"no limiter", nil, 0, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine, peer := ends(t, false)
			c := newLink(mine, Options{Limiter: tc.limiter})
			got := make(chan messages.ID, n)
			ended := run(context.Background(), c, func(f messages.Frame, b *Buffer) error {
				got <- f.ID
				b.Free()
				return nil
			})
			defer func() { c.Close(nil); <-ended }()
			start := time.Now()
			for i := 0; i < n; i++ {
				writeTo(t, peer, messages.TypeData, 0, idOf(i), nil)
			}
			for i := 0; i < n; i++ {
				select {
				case id := <-got:
					if id != idOf(i) {
						t.Fatalf("frame %d: got id %v, want %v", i, id, idOf(i))
					}
				case <-time.After(tc.atMost):
					t.Fatalf("frame %d not read after %v", i, tc.atMost)
				}
			}
			if d := time.Since(start); d < tc.atLeast || d > tc.atMost {
				t.Errorf("%d frames read in %v, want %v to %v", n, d, tc.atLeast, tc.atMost)
			}
		})
	}
}

// TestConnDrainFrees: once Run returns, whatever was still queued for
// the writer (frames, a Pong, the last frame) has been freed: the pool
// hands those buffers out again instead of allocating new ones. (The
// race detector makes the pool drop a quarter of what it is given, so
// the bound is half.)
func TestConnDrainFrees(t *testing.T) {
	const queued = 32
	mine, _ := ends(t, false)
	c := newLink(mine, Options{Queue: queued})
	runtime.GC()
	runtime.GC() // the pool's victims too: start with an empty pool
	for i := 0; i < queued; i++ {
		c.TrySend(NewBuffer())
	}
	c.pong.Store(NewBuffer())
	c.last <- lastFrame{b: NewBuffer(), err: ErrClosed}
	c.Close(nil)
	<-run(context.Background(), c, discard)
	if c.queued() != 0 || len(c.last) != 0 || c.pong.Load() != nil {
		t.Fatalf("after Run: %d frames, %d last frames and pong %v left", c.queued(), len(c.last), c.pong.Load() != nil)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	bs := make([]*Buffer, 0, queued+2)
	for i := 0; i < queued+2; i++ {
		bs = append(bs, NewBuffer())
	}
	runtime.ReadMemStats(&after)
	FreeAll(bs)
	kept := uint64(queued+2) * (headroom + messages.MaxFrame)
	if got := after.TotalAlloc - before.TotalAlloc; got > kept/2 {
		t.Errorf("got %d bytes allocated for %d buffers after the drain, want at most %d: the drained ones were not freed", got, queued+2, kept/2)
	}
}

// TestConnQueueFromHandler: the reader's Handler answers every frame with
// Queue, and every answer reaches the peer, in order.
func TestConnQueueFromHandler(t *testing.T) {
	const n = 50
	mine, peer := ends(t, false)
	c := newLink(mine, Options{Queue: 8})
	ended := run(context.Background(), c, func(f messages.Frame, b *Buffer) error {
		b.Free()
		return c.Queue(context.Background(), Frame(messages.TypeData, 0, f.ID, nil))
	})
	defer func() { c.Close(nil); <-ended }()
	for i := 0; i < n; i++ {
		writeTo(t, peer, messages.TypeData, 0, idOf(i), nil)
	}
	for i := 0; i < n; i++ {
		if f := readFrom(t, peer); f.ID != idOf(i) {
			t.Fatalf("answer %d: got id %v, want %v", i, f.ID, idOf(i))
		}
	}
}
