package redisbus

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestWindowInOrder(t *testing.T) {
	var w window
	for c := uint64(1); c <= 3*windowSize; c++ {
		if !w.accept(c) {
			t.Fatalf("counter %d refused, want accepted", c)
		}
		if w.accept(c) {
			t.Fatalf("counter %d accepted twice", c)
		}
	}
}

func TestWindowOutOfOrder(t *testing.T) {
	var w window
	for _, c := range []uint64{100, 50, 99, 1, 101, 64, 63, 65, 0} {
		if !w.accept(c) {
			t.Fatalf("counter %d refused, want accepted", c)
		}
	}
	for _, c := range []uint64{100, 50, 99, 1, 101, 64, 63, 65, 0} {
		if w.accept(c) {
			t.Fatalf("counter %d accepted twice", c)
		}
	}
}

// TestWindowEdges: the window holds exactly windowSize counters, the
// highest included, wherever it sits against the words of the ring.
func TestWindowEdges(t *testing.T) {
	for _, top := range []uint64{windowSize, windowSize + 1, 10_000, 64 * windowWords, 64*windowWords + 63, 1 << 40} {
		var w window
		if !w.accept(top) {
			t.Fatalf("top %d refused", top)
		}
		oldest := top - windowSize + 1
		if w.accept(oldest - 1) {
			t.Errorf("top %d: counter %d, below the window, accepted", top, oldest-1)
		}
		if !w.accept(oldest) {
			t.Errorf("top %d: counter %d, the oldest in the window, refused", top, oldest)
		}
		if w.accept(oldest) {
			t.Errorf("top %d: counter %d accepted twice", top, oldest)
		}
	}
}

// TestWindowSlideClearsWords: a bit set a lap of the ring ago is cleared
// before its slot takes a new counter, whether the window slides a word at
// a time or jumps.
func TestWindowSlideClearsWords(t *testing.T) {
	lap := uint64(64 * windowWords) // counters c and c+lap share a bit
	for _, tc := range []struct {
		name  string
		steps []uint64
	}{
		{"one word at a time", func() []uint64 {
			var s []uint64
			for c := uint64(3); c <= 3+lap; c += 64 {
				s = append(s, c)
			}
			return s
		}()},
		{"to the last word of the ring, then the next", []uint64{67, 64*(windowWords) + 5, 67 + lap}},
		{"a whole lap at once", []uint64{5, 5 + lap}},
		{"a lap and a bit at once", []uint64{5, 5 + lap + 1, 5 + lap}},
		{"many laps at once", []uint64{5, 5 + 1000*lap}},
		{"from the last bit of a word to the first of the next", []uint64{63, 64, 63 + lap, 64 + lap}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w window
			for _, c := range tc.steps {
				if !w.accept(c) {
					t.Fatalf("counter %d refused after %v, want accepted", c, tc.steps)
				}
			}
		})
	}
}

// TestWindowJump: a jump larger than the window forgets everything below
// it and still takes every unseen counter in the new window.
func TestWindowJump(t *testing.T) {
	var w window
	for c := uint64(1); c <= 200; c++ {
		w.accept(c)
	}
	top := uint64(200 + windowSize + 500)
	if !w.accept(top) {
		t.Fatal("jump refused")
	}
	for c := uint64(1); c <= 200; c++ {
		if w.accept(c) {
			t.Fatalf("counter %d, below the window after the jump, accepted", c)
		}
	}
	for c := top - windowSize + 1; c < top; c++ {
		if !w.accept(c) {
			t.Fatalf("counter %d, unseen and in the window, refused", c)
		}
	}
}

// TestWindowModel compares the window with the obvious set of every
// counter ever accepted, on random walks with steps around word and window
// sizes.
func TestWindowModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	steps := []int64{-windowSize - 64, -windowSize - 1, -windowSize, -windowSize + 1, -65, -64, -63, -1, 0,
		1, 2, 63, 64, 65, 127, 128, windowSize - 1, windowSize, windowSize + 1, 64 * windowWords, 64*windowWords + 1, 3 * windowSize}
	for walk := range 50 {
		var w window
		var top uint64
		seen := map[uint64]bool{}
		c := uint64(rng.IntN(200))
		for i := range 2000 {
			want := !seen[c] && (c > top || top-c < windowSize)
			if got := w.accept(c); got != want {
				t.Fatalf("walk %d, step %d: counter %d with top %d: got %v, want %v", walk, i, c, top, got, want)
			}
			if want {
				seen[c] = true
				top = max(top, c)
			}
			next := int64(c) + steps[rng.IntN(len(steps))]
			if rng.IntN(4) == 0 {
				next = int64(top) - int64(rng.IntN(windowSize+100)) // somewhere near the window
			}
			c = uint64(max(next, 0))
		}
	}
}

func TestReplayFilter(t *testing.T) {
	var f replayFilter
	a, b := senderID{'a'}, senderID{'b'}
	t0 := time.Unix(1_800_000_000, 0)
	if !f.accept(msgID{a, 1}, nil, t0) || !f.accept(msgID{b, 1}, nil, t0) {
		t.Fatal("first messages of two senders: refused, want accepted")
	}
	if f.accept(msgID{a, 1}, nil, t0) {
		t.Fatal("a's message accepted twice")
	}
	if !f.accept(msgID{b, 2}, nil, t0.Add(senderRetention/2)) {
		t.Fatal("b's second message refused")
	}
	// Just before the retention ends, a is remembered.
	if f.accept(msgID{a, 1}, nil, t0.Add(senderRetention-time.Second)) {
		t.Fatal("a's message accepted again within the retention")
	}
	// At the end of the retention the last sweep was a second ago: too
	// soon for another.
	if f.accept(msgID{a, 1}, nil, t0.Add(senderRetention)) {
		t.Fatal("a's message accepted again before the next sweep")
	}
	// The next sweep forgets a, which the timestamp check has long
	// covered, but not b, heard since.
	later := t0.Add(senderRetention - time.Second + sweepEvery)
	if !f.accept(msgID{a, 1}, nil, later) {
		t.Fatal("a's window not forgotten after the retention")
	}
	if f.accept(msgID{b, 2}, nil, later) {
		t.Fatal("b's window forgotten, want kept: b was heard within the retention")
	}
	if len(f.senders) != 2 {
		t.Fatalf("got %d windows, want 2", len(f.senders))
	}
	// Long after, both are forgotten: only b's new window is left.
	if !f.accept(msgID{b, 3}, nil, later.Add(senderRetention+sweepEvery)) || len(f.senders) != 1 {
		t.Fatalf("got %d windows long after both were last heard, want 1", len(f.senders))
	}
}

// The retention must outlast every message a forgotten window accepted.
func TestRetentionCoversStaleness(t *testing.T) {
	if senderRetention < 2*MaxClockSkew {
		t.Fatalf("senderRetention %v is shorter than 2*MaxClockSkew", senderRetention)
	}
}
