package link

import (
	"context"
	"sync"

	"keyhole/messages"
)

// Flow control of WebSocket streams. A sender spends credit for each frame
// and waits when it has none; the receiver grants credit back as its
// socket takes the frames. A slow reader thus slows its sender's source
// (down to TCP) instead of filling memory, and never blocks other streams.

// copyBelow is the frame size under which a waiting frame is copied out
// of its pooled buffer, so small queued messages hold little memory.
const copyBelow = 16 << 10

// slotCost is what one queued frame costs beyond its bytes.
const slotCost = 64

// Cost is what a frame with n payload bytes costs against a window: the
// memory its receiver holds for it while it waits.
func Cost(n int) int64 {
	if size := messages.HeaderSize + n; size <= copyBelow {
		return int64(size) + slotCost
	}
	return messages.MaxFrame + slotCost
}

// Window is a sender's credit on one stream.
type Window struct {
	mu    sync.Mutex // protects avail
	avail int64
	wake  chan struct{}
}

// NewWindow returns a window holding n credit.
func NewWindow(n int64) *Window {
	return &Window{avail: n, wake: make(chan struct{}, 1)}
}

// Acquire spends n credit, waiting while none is left. It may overdraw by
// one frame, so a frame larger than the window still goes. One goroutine
// acquires from a window.
func (w *Window) Acquire(ctx context.Context, done <-chan struct{}, n int64) error {
	for {
		w.mu.Lock()
		if w.avail > 0 {
			w.avail -= n
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-done:
			return ErrClosed
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Add grants n credit.
func (w *Window) Add(n int64) {
	w.mu.Lock()
	w.avail += n
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
