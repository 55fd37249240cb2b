package link

import (
	"context"
	"sync"

	"keyhole/messages"
)

// Flow control of stream bodies: WebSocket messages, and on links of
// revision 2 HTTP bodies too. A sender spends credit for each frame and
// waits when it has none; the receiver grants credit back as its socket
// takes the frames. A slow reader thus slows its sender's source (down to
// TCP) instead of filling memory, and never blocks other streams.

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

// StreamQueue is what a receiver holds for one flow-controlled stream, in
// cost units: the window, one frame of overdraft and one of slack.
const StreamQueue = messages.InitialWindow + 2*(messages.MaxFrame+slotCost)

// RelayQueue is what a node relaying a flow-controlled stream between the
// bus and a link holds for it: the stream's queue, and room for the small
// frames (credit, a head, a teardown) that travel beside its bodies.
const RelayQueue = StreamQueue + 64<<10

// WideRelayQueue is RelayQueue for the client's side of a stream, whose
// window the visitor's node may widen to messages.MaxWindow.
const WideRelayQueue = RelayQueue + messages.MaxWindow - messages.InitialWindow

// NewStreamInbox returns the inbox of a flow-controlled stream, with the
// window the peer's credit goes to.
func NewStreamInbox() *Inbox {
	// One allocation for both, as they live and die together.
	s := &struct {
		in  Inbox
		win Window
	}{}
	s.win.init(messages.InitialWindow)
	s.in.init(1<<20, StreamQueue, &s.win)
	return &s.in
}

// Grant adds up what a receiver has passed on, to grant it back as credit
// in increments of a quarter window.
type Grant struct{ owed int64 }

// Widen adds n to the next grant, widening the sender's window by n; the
// receiver has made room for n more (Inbox.Widen) first.
func (g *Grant) Widen(n int64) { g.owed += n }

// Consumed records a frame of n payload bytes passed on. It returns a
// Credit frame for stream id when enough is owed to grant, else nil.
func (g *Grant) Consumed(id messages.ID, n int) *Buffer {
	g.owed += Cost(n)
	if g.owed < messages.InitialWindow/4 {
		return nil
	}
	b := Frame(messages.TypeCredit, 0, id, messages.AppendCredit(nil, uint32(g.owed)))
	g.owed = 0
	return b
}

// Window is a sender's credit on one stream. A nil Window is a stream
// without flow control: Acquire never waits.
type Window struct {
	mu    sync.Mutex // protects avail and wake
	avail int64
	wake  chan struct{} // made when Acquire first waits
}

// NewWindow returns a window holding n credit.
func NewWindow(n int64) *Window {
	w := &Window{}
	w.init(n)
	return w
}

func (w *Window) init(n int64) { w.avail = n }

// Acquire spends n credit, waiting while none is left. It may overdraw by
// one frame, so a frame larger than the window still goes. One goroutine
// acquires from a window.
func (w *Window) Acquire(ctx context.Context, done <-chan struct{}, n int64) error {
	return w.acquire(ctx, nil, done, n)
}

// acquire is Acquire that, given an inbox q, waits on q's Done, asking
// for it only if it has to wait at all.
func (w *Window) acquire(ctx context.Context, q *Inbox, done <-chan struct{}, n int64) error {
	if w == nil {
		return nil
	}
	for {
		w.mu.Lock()
		if w.avail > 0 {
			w.avail -= n
			w.mu.Unlock()
			return nil
		}
		if w.wake == nil {
			w.wake = make(chan struct{}, 1)
		}
		wake := w.wake
		w.mu.Unlock()
		if q != nil && done == nil {
			done = q.Done()
		}
		select {
		case <-wake:
		case <-done:
			return ErrClosed
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Add grants n credit.
func (w *Window) Add(n int64) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.avail += n
	wake := w.wake
	w.mu.Unlock()
	if wake != nil {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}
