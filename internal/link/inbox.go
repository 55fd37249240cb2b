package link

import (
	"context"
	"errors"
	"sync"
	"time"

	"keyhole/messages"
)

// ErrOverflow means a stream's peer sent more than its inbox holds: it
// ignored its credit, or broke a body cap.
var ErrOverflow = errors.New("stream queue full")

// Inbound is one frame waiting in an Inbox, with the buffer it lives in.
type Inbound struct {
	F messages.Frame
	B *Buffer
}

// Inbox is the bounded queue of frames a link delivers to one stream. The
// link's reader never blocks on it: a frame that does not fit fails the
// stream with ErrOverflow. It holds at most a number of frames and a
// number of bytes (counted as Cost counts them). On a stream with a send
// window, Credit frames do not queue: they go straight to the window. An
// inbox without one (a relay passing frames on) queues them like the rest.
type Inbox struct {
	maxFrames int
	maxBytes  int64
	win       *Window // nil on streams without flow control

	mu     sync.Mutex // protects q, head, queued, err and the frames in first
	q      []Inbound
	head   int
	queued int64
	err    error
	first  [2]Inbound // q's backing while it holds few frames: a request's head and body

	// inline, when set, is offered a frame that arrives while the
	// consumer waits with nothing queued (see SetInline). waiting: the
	// consumer found the queue empty and has taken nothing since;
	// inlining: a deliverer is running inline, as the consumer.
	inline    func(*Inbound) bool
	waiting   bool
	inlining  bool
	inlineEnd sync.Cond // on mu: an inline run ended

	notify chan struct{} // a frame was queued, or the inbox failed
	once   sync.Once
	gone   chan struct{} // closed by Fail; made by the first Done
}

// NewInbox returns an inbox holding at most frames frames and bytes bytes.
// win, if not nil, receives the credit the peer grants.
func NewInbox(frames int, bytes int64, win *Window) *Inbox {
	q := &Inbox{}
	q.init(frames, bytes, win)
	return q
}

func (q *Inbox) init(frames int, bytes int64, win *Window) {
	q.maxFrames, q.maxBytes, q.win = frames, bytes, win
	q.q = q.first[:0]
	q.inlineEnd.L = &q.mu
	q.notify = make(chan struct{}, 1)
}

// Window is the stream's send window, or nil.
func (q *Inbox) Window() *Window { return q.win }

// Acquire spends n of the stream's send window as Window.Acquire does,
// giving up when the inbox fails; without a window it never waits.
func (q *Inbox) Acquire(ctx context.Context, n int64) error {
	return q.win.acquire(ctx, q, nil, n)
}

// SetInline lets f deal with a frame on the deliverer's goroutine, in
// place of the consumer, when the frame arrives while the consumer waits
// with nothing queued: a consumer that keeps up is then not woken for
// each frame. f runs as the consumer would, never at the same time as it
// nor as another f, and after everything the consumer took before; it
// must not block. It returns true when it has dealt with the frame (its
// buffer is then f's), false to have the frame, as *m then holds it,
// queued for the consumer. A nil f stops it: SetInline returns once an
// f that was running has returned.
func (q *Inbox) SetInline(f func(m *Inbound) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inline = f
	for f == nil && q.inlining {
		q.inlineEnd.Wait()
	}
}

// Deliver queues a frame, taking b. It reports false, having failed the
// inbox, when the frame does not fit.
func (q *Inbox) Deliver(f messages.Frame, b *Buffer) bool {
	if f.Type == messages.TypeCredit && q.win != nil {
		n, err := messages.ParseCredit(f.Payload)
		b.Free()
		if err == nil {
			q.win.Add(int64(n))
		}
		return true
	}
	q.mu.Lock()
	if q.inline != nil && q.waiting && !q.inlining && q.head == len(q.q) && q.err == nil {
		inline := q.inline
		q.inlining = true
		q.mu.Unlock()
		m := Inbound{f, b}
		done := inline(&m)
		q.mu.Lock()
		q.inlining = false
		q.inlineEnd.Broadcast()
		if done {
			wake := q.head < len(q.q) // queued by another deliverer meanwhile
			q.mu.Unlock()
			if wake {
				q.wake()
			}
			return true
		}
		f, b = m.F, m.B
	}
	if waiting := len(q.q) - q.head; len(b.B) <= copyBelow && cap(b.B) > copyBelow && waiting > 0 && !(waiting == 1 && f.End()) {
		// Frames are waiting: a small one waits in a buffer of its own
		// size. A consumer keeping up takes it from the pooled one; the
		// inbox's slack covers that one buffer. The last frame of a
		// stream behind a single one (a small answer's body behind its
		// head) keeps its pooled buffer too: nothing follows it, so the
		// two fit, and a consumer takes both at once.
		small := &Buffer{B: append(make([]byte, 0, len(b.B)), b.B...)}
		b.Free()
		b = small
		f.Payload = b.B[messages.HeaderSize:]
	}
	size := cost(b)
	if q.err != nil || len(q.q)-q.head >= q.maxFrames || q.queued+size > q.maxBytes {
		q.mu.Unlock()
		b.Free()
		q.Fail(ErrOverflow)
		return false
	}
	q.q = append(q.q, Inbound{f, b})
	q.queued += size
	q.mu.Unlock()
	q.wake()
	return true
}

func (q *Inbox) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func cost(b *Buffer) int64 { return int64(cap(b.B)) + slotCost }

// Fail ends the inbox with err; frames already queued are still read.
func (q *Inbox) Fail(err error) {
	q.once.Do(func() {
		q.mu.Lock()
		q.err = err
		gone := q.gone
		q.mu.Unlock()
		if gone != nil {
			close(gone)
		}
		q.wake()
	})
}

// Done is closed once the inbox has failed. The channel is made when it
// is first asked for: a consumer waiting in Next learns of the failure
// without it.
func (q *Inbox) Done() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.gone == nil {
		q.gone = make(chan struct{})
		if q.err != nil {
			close(q.gone)
		}
	}
	return q.gone
}

// Err is why the inbox failed, or nil.
func (q *Inbox) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Widen lets the inbox hold n bytes more: the receiver is about to widen
// the sender's window by n.
func (q *Inbox) Widen(n int64) {
	q.mu.Lock()
	q.maxBytes += n
	q.mu.Unlock()
}

// Len is the number of frames waiting.
func (q *Inbox) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q) - q.head
}

// Next returns the next frame. Frames queued before a failure come first,
// so an answer that arrived whole is served even if the link dropped
// right after it.
func (q *Inbox) Next(ctx context.Context) (Inbound, error) {
	return q.NextBefore(ctx, nil, nil)
}

// NextBefore is Next that gives up with expired once a value arrives on
// expiry (a timer's channel) before a frame does.
func (q *Inbox) NextBefore(ctx context.Context, expiry <-chan time.Time, expired error) (Inbound, error) {
	for {
		m, ok, err := q.pop()
		if ok || err != nil {
			return m, err
		}
		select {
		case <-q.notify: // a frame, or the failure pop gives next
		case <-ctx.Done():
			return Inbound{}, context.Cause(ctx)
		case <-expiry:
			return Inbound{}, expired
		}
	}
}

func (q *Inbox) pop() (Inbound, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inlining {
		return Inbound{}, false, nil // the deliverer wakes the consumer after
	}
	if q.head == len(q.q) {
		q.waiting = true
		return Inbound{}, false, q.err
	}
	q.waiting = false
	m := q.q[q.head]
	q.q[q.head] = Inbound{}
	q.head++
	if q.head == len(q.q) {
		q.head = 0
		if cap(q.q) > 64 {
			q.q = q.first[:0] // let a burst's backlog go
		} else {
			q.q = q.q[:0]
		}
	}
	q.queued -= cost(m.B)
	return m, true, nil
}

// Release frees every frame still queued.
func (q *Inbox) Release() {
	for {
		m, ok, _ := q.pop()
		if !ok {
			return
		}
		m.B.Free()
	}
}
