package link

import (
	"context"
	"errors"
	"testing"
	"time"

	"keyhole/messages"
)

// blocked is how long a test waits to see that something does not
// happen; long enough that a goroutine that could go on would have.
const blocked = 100 * time.Millisecond

// acquireAsync runs one Acquire in its own goroutine and returns its
// result channel.
func acquireAsync(ctx context.Context, w *Window, done <-chan struct{}, n int64) <-chan error {
	got := make(chan error, 1)
	go func() { got <- w.Acquire(ctx, done, n) }()
	return got
}

func avail(w *Window) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.avail
}

// TestWindowAcquire: what a sender's credit lets it send at once, and
// what makes it wait.
func TestWindowAcquire(t *testing.T) {
	for _, tc := range []struct {
		name      string
		start     int64
		acquire   []int64 // acquired in turn; each returns at once
		thenWaits bool    // one more Acquire(1) waits
		wantAvail int64
	}{
		{"within the window", 100, []int64{40, 40}, false, 20},
		{"spent exactly", 100, []int64{60, 40}, true, 0},
		{"overdraft by one frame", 100, []int64{60, 1000}, true, -960},
		{"a frame larger than the window", 10, []int64{messages.MaxFrame}, true, 10 - messages.MaxFrame},
		{"zero window", 0, nil, true, 0},
		{"negative window", -5, nil, true, -5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(tc.start)
			for i, n := range tc.acquire {
				select {
				case err := <-acquireAsync(context.Background(), w, nil, n):
					if err != nil {
						t.Fatalf("acquire %d (%d): got %v, want nil", i, n, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("acquire %d (%d) waited with %d credit", i, n, avail(w))
				}
			}
			if got := avail(w); got != tc.wantAvail {
				t.Errorf("got %d credit left, want %d", got, tc.wantAvail)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := acquireAsync(ctx, w, nil, 1)
			select {
			case err := <-got:
				if tc.thenWaits {
					t.Errorf("Acquire with %d credit returned %v, want it to wait", tc.wantAvail, err)
				}
			case <-time.After(blocked):
				if !tc.thenWaits {
					t.Errorf("Acquire with %d credit waited, want it to return", tc.wantAvail)
				}
				cancel()
				<-got
			}
		})
	}
}

// TestWindowWaitEnds: a waiting Acquire goes on when credit is added
// past zero, and ends with the right error when the stream is done or
// its context ends.
func TestWindowWaitEnds(t *testing.T) {
	cause := errors.New("visitor left")
	for _, tc := range []struct {
		name    string
		start   int64
		adds    []int64 // added while Acquire waits
		closeIt bool
		cancel  bool
		want    error
		wantEnd bool // Acquire returns
	}{
		{"add wakes the waiter", 0, []int64{1}, false, false, nil, true},
		{"add short of zero keeps it waiting", -100, []int64{50}, false, false, nil, false},
		{"adds summed past zero", -100, []int64{50, 51}, false, false, nil, true},
		{"done ends the wait", 0, nil, true, false, ErrClosed, true},
		{"ctx ends the wait with its cause", 0, nil, false, true, cause, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(tc.start)
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := make(chan struct{})
			got := acquireAsync(ctx, w, done, 10)
			select {
			case err := <-got:
				t.Fatalf("Acquire at %d credit returned %v before anything happened", tc.start, err)
			case <-time.After(blocked):
			}
			for _, n := range tc.adds {
				w.Add(n)
				time.Sleep(10 * time.Millisecond) // let the waiter look
			}
			if tc.closeIt {
				close(done)
			}
			if tc.cancel {
				cancel(cause)
			}
			select {
			case err := <-got:
				if !tc.wantEnd {
					t.Fatalf("Acquire returned %v at %d credit, want it to wait", err, avail(w))
				}
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Errorf("got %v, want %v", err, tc.want)
				}
			case <-time.After(map[bool]time.Duration{true: 5 * time.Second, false: blocked}[tc.wantEnd]):
				if tc.wantEnd {
					t.Fatal("Acquire still waits")
				}
				cancel(nil)
				<-got
			}
		})
	}
}

// TestNilWindow: a stream without flow control never waits, and adding
// to it is harmless.
func TestNilWindow(t *testing.T) {
	var w *Window
	w.Add(5)
	done := make(chan struct{})
	close(done)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 3; i++ {
		if err := w.Acquire(ctx, done, messages.MaxFrame); err != nil {
			t.Fatalf("acquire %d on a nil window: got %v, want nil", i, err)
		}
	}
}

// TestGrant: a receiver grants credit back once it has passed on a
// quarter window's cost, for exactly what it passed on, then counts
// again from zero.
func TestGrant(t *testing.T) {
	const quarter = messages.InitialWindow / 4
	for _, tc := range []struct {
		name    string
		payload int // every frame's payload
		every   int // a grant after this many frames
	}{
		{"whole chunks", messages.MaxChunk, 4},                       // 4 × 69,716
		{"just over the copy size", 16365, 4},                        // same cost as a chunk
		{"largest small frame", copyBelow - messages.HeaderSize, 16}, // 16,448 each
		{"1 KiB", 1024, 237},                                         // 1,108 each
		{"empty", 0, 3121},                                           // 84 each
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := messages.ID{7, 7}
			cost := Cost(tc.payload)
			if got := (quarter + cost - 1) / cost; got != int64(tc.every) {
				t.Fatalf("test table: %d frames of cost %d reach a quarter window, table says %d", got, cost, tc.every)
			}
			var g Grant
			for round := 0; round < 2; round++ {
				for i := 1; i <= tc.every; i++ {
					b := g.Consumed(id, tc.payload)
					if i < tc.every {
						if b != nil {
							t.Fatalf("round %d: a grant after %d frames, want one after %d", round, i, tc.every)
						}
						continue
					}
					if b == nil {
						t.Fatalf("round %d: no grant after %d frames of cost %d", round, i, cost)
					}
					f, err := messages.Parse(b.B)
					if err != nil {
						t.Fatal(err)
					}
					n, err := messages.ParseCredit(f.Payload)
					if f.Type != messages.TypeCredit || f.ID != id || err != nil {
						t.Fatalf("got %v on %v (%v), want Credit on %v", f.Type, f.ID, err, id)
					}
					if want := uint32(int64(tc.every) * cost); n != want {
						t.Errorf("round %d: got an increment of %d, want %d", round, n, want)
					}
					b.Free()
				}
			}
		})
	}
}

// TestGrantWiden: a widening is granted with the next frame consumed,
// added to what is owed, and the sum starts again from zero after it.
func TestGrantWiden(t *testing.T) {
	id := messages.ID{7, 7}
	cost := Cost(1024)
	var g Grant
	if b := g.Consumed(id, 1024); b != nil {
		t.Fatal("a grant after one small frame")
	}
	g.Widen(messages.MaxWindow - messages.InitialWindow)
	b := g.Consumed(id, 1024)
	if b == nil {
		t.Fatal("no grant after a widening")
	}
	f, _ := messages.Parse(b.B)
	n, err := messages.ParseCredit(f.Payload)
	if want := 2*cost + messages.MaxWindow - messages.InitialWindow; err != nil || int64(n) != want {
		t.Errorf("got an increment of %d (%v), want %d", n, err, want)
	}
	b.Free()
	if b := g.Consumed(id, 1024); b != nil {
		t.Error("a grant right after the widening one")
	}
}

// TestCost: what a frame costs against a window (PROTOCOL.md section 9.3).
func TestCost(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want int64
	}{
		{0, 84},
		{1024, 1108},
		{16364, 16448},
		{16365, 69716},
		{messages.MaxChunk, 69716},
	} {
		if got := Cost(tc.n); got != tc.want {
			t.Errorf("Cost(%d): got %d, want %d", tc.n, got, tc.want)
		}
	}
	if StreamQueue != 1188008 {
		t.Errorf("StreamQueue: got %d, want 1,188,008", StreamQueue)
	}
}

// TestInboxAcquire: a stream's inbox spends its window's credit, waits
// when there is none, and gives up when the inbox fails meanwhile.
func TestInboxAcquire(t *testing.T) {
	ctx := context.Background()
	q := NewStreamInbox()
	if err := q.Acquire(ctx, messages.InitialWindow); err != nil {
		t.Fatalf("spending the whole window: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- q.Acquire(ctx, 1) }()
	select {
	case err := <-got:
		t.Fatalf("Acquire with no credit returned %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	q.Fail(ErrOverflow)
	select {
	case err := <-got:
		if err != ErrClosed {
			t.Errorf("got %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire still waits after the inbox failed")
	}
	if err := (&Inbox{}).Acquire(ctx, 1<<40); err != nil {
		t.Errorf("an inbox without a window: %v", err)
	}
}
