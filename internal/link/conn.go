// Package link runs one keyhole WebSocket between a client and a proxy:
// a bounded queue written by whoever finds the writer's role free
// (keepalive pings go through it), frames read inline by Run, and a
// deadline that drops a link that has been silent for Timeout. Both the
// proxy and the client use it.
package link

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"keyhole/messages"
)

// Defaults for Options.
const (
	DefaultPingInterval = 10 * time.Second
	DefaultTimeout      = 20 * time.Second
	DefaultQueue        = 128
)

// ErrClosed is returned by Send after the link has ended.
var ErrClosed = errors.New("link closed")

// Options tune a Conn. Zero values mean the defaults.
type Options struct {
	PingInterval time.Duration // a Ping after this long without sending anything
	Timeout      time.Duration // drop the link after this long without hearing anything
	Queue        int           // frames waiting for the writer
	Limiter      *rate.Limiter // if set, paces the frames read from the peer
	Logger       *slog.Logger
	Client       bool // this end dialed: its messages are masked (RFC 6455)

	// ReadAhead, if set, returns how many bytes the WebSocket has read
	// from the socket but not yet returned (its bufio.Reader's Buffered).
	// With it a reader with nothing to read waits for the socket
	// directly, a few calls deep, rather than inside the WebSocket
	// library: the stack of an idle link then shrinks to a few KiB.
	ReadAhead func() int

	// Reader, if set, is the buffered reader the WebSocket reads from,
	// at a message boundary, on the end that did not dial (Client
	// unset): the link then reads its frames from it itself (frames.go)
	// instead of through the WebSocket library.
	Reader *bufio.Reader
}

// Handler receives each frame read from the peer, with ownership of the
// buffer holding it. An error ends the link.
type Handler func(f messages.Frame, b *Buffer) error

// maxBatch bounds how many queued frames go out in one system call.
const maxBatch = 32

// Conn is one link.
type Conn struct {
	ws   *websocket.Conn
	nc   net.Conn      // ws's connection, which the link writes to itself
	bw   buffersWriter // nc, if it writes net.Buffers itself (a sock.Conn)
	opts Options
	// The queue: frames waiting for the writer, oldest first. A slice
	// rather than a channel, so an idle link holds no room for frames.
	qmu   sync.Mutex    // protects queue and space
	queue []*Buffer     // at most opts.Queue
	space chan struct{} // closed when the writer takes frames; made by a sender waiting for room
	done  chan struct{} // closed when the link ends

	closeOnce sync.Once
	err       error // why the link ended; set before done is closed

	pong atomic.Pointer[Buffer] // a Ping's answer: ahead of the queue, through the writer
	last chan lastFrame         // at most one: the frame that says why the link ends

	// The writer runs only while there is something to write: an idle
	// link is its reader alone. See kick.
	writing   atomic.Bool
	lastFlush atomic.Int64   // nanotime of the last inline write; see flush
	ping      *time.Timer    // queues a Ping after PingInterval without writing
	wmu       sync.Mutex     // protects started, stopped and the writers' Add
	started   bool           // Run has begun: frames queued before wait for it
	stopped   bool           // Run is waiting for the writer: start no other
	writers   sync.WaitGroup // the writer, while it runs

	bufs  net.Buffers // the writer's scratch
	wbufs net.Buffers // what WriteTo consumes of bufs; a field, so that it does not escape
	batch []*Buffer   // the writer's scratch

	frames   *frames         // reads the peer's messages itself; nil: the library does
	raw      syscall.RawConn // nc's, to wait for it shallowly; nil if unusable
	lastRead time.Time       // when the reader last had a frame; reader only
	quiet    bool            // the gap before that frame was over quietGap; reader only
	deadline time.Time       // the read deadline last set; reader only
}

// quietGap is the pause between frames after which a reader waits for the
// next one shallowly (ReadAhead): on a busy link frames follow closer, and
// the reader goes straight to the WebSocket.
const quietGap = 50 * time.Millisecond

// New wraps an established WebSocket. Call Run to start it.
func New(ws *websocket.Conn, opts Options) *Conn {
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ws.SetReadLimit(messages.MaxFrame)
	var raw syscall.RawConn
	if sc, ok := ws.NetConn().(syscall.Conn); ok && opts.ReadAhead != nil && canPeek {
		raw, _ = sc.SyscallConn()
	}
	bw, _ := ws.NetConn().(buffersWriter)
	var fr *frames
	if opts.Reader != nil && !opts.Client {
		fr = &frames{br: opts.Reader}
	}
	return &Conn{
		frames: fr,
		bw:     bw,
		raw:    raw,
		quiet:  true, // a new link waits for its first frame shallowly
		ws:     ws,
		nc:     ws.NetConn(),
		opts:   opts,
		done:   make(chan struct{}),
		last:   make(chan lastFrame, 1),
	}
}

// lastFrame is a frame the writer sends ahead of anything queued, before
// it ends the link with err.
type lastFrame struct {
	b   *Buffer
	err error
}

// lastWait bounds how long a failing reader waits for the writer to send
// the frame that says why.
const lastWait = time.Second

// Done is closed when the link has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the link ended; nil while it runs.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Send queues b for the writer, waiting while the queue is full, and takes
// ownership of b. It fails once the link has ended or ctx is done. When no
// writer runs, Send writes what is queued itself (see kick), so the
// reader's Handler uses Queue instead.
func (c *Conn) Send(ctx context.Context, b *Buffer) error {
	return c.SendBatch(ctx, b)
}

// SendBatch queues frames in order, taking ownership of them; the writer
// sends whatever is queued together in one system call.
func (c *Conn) SendBatch(ctx context.Context, bs ...*Buffer) error {
	select {
	case <-c.done:
		FreeAll(bs)
		return fmt.Errorf("send: %w", c.err)
	default:
	}
	for i, b := range bs {
		if err := c.enqueue(ctx, b); err != nil {
			FreeAll(bs[i+1:])
			c.kick() // for those queued before
			return err
		}
	}
	c.flush()
	return nil
}

// Queue queues b like Send, waiting while the queue is full, but never
// writes on the caller's goroutine: it is for the reader's Handler, which
// must go back to reading rather than wait on the socket (two peers whose
// readers both waited to write would each wait for the other to read).
func (c *Conn) Queue(ctx context.Context, b *Buffer) error {
	select {
	case <-c.done:
		b.Free()
		return fmt.Errorf("send: %w", c.err)
	default:
	}
	if err := c.enqueue(ctx, b); err != nil {
		return err
	}
	c.kick()
	return nil
}

func (c *Conn) enqueue(ctx context.Context, b *Buffer) error {
	for {
		if c.push(b) {
			return nil
		}
		c.qmu.Lock()
		if len(c.queue) < c.opts.Queue { // the writer took some meanwhile
			c.qmu.Unlock()
			continue
		}
		if c.space == nil {
			c.space = make(chan struct{})
		}
		space := c.space
		c.qmu.Unlock()
		c.kick() // full: make sure a writer empties it
		select {
		case <-space:
			continue
		case <-c.done:
		case <-ctx.Done():
		}
		b.Free()
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("send: %w", c.err)
	}
}

// push queues b if there is room.
func (c *Conn) push(b *Buffer) bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) >= c.opts.Queue {
		return false
	}
	c.queue = append(c.queue, b)
	return true
}

// take moves up to maxBatch queued frames, oldest first, to batch, and
// wakes the senders waiting for room.
func (c *Conn) take(batch []*Buffer) []*Buffer {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	n := min(len(c.queue), maxBatch-len(batch))
	if n <= 0 {
		return batch
	}
	batch = append(batch, c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	if rest == 0 && cap(c.queue) > maxBatch {
		c.queue = nil // a burst's room goes back once it has been written
	}
	if c.space != nil {
		close(c.space)
		c.space = nil
	}
	return batch
}

// queued is how many frames wait in the queue.
func (c *Conn) queued() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.queue)
}

// The writer role goes to whoever finds it free: a sender (Send,
// SendBatch) writes what is queued on its own goroutine, which saves the
// hand-off to another goroutine (and often a thread's wake-up) on every
// frame of a quiet or request-at-a-time link; everyone else (TrySend, a
// Ping's answer, the last frame) starts a writer goroutine. Either writes
// until nothing is queued; an inline writer hands over to a goroutine
// after inlineBatches system calls, so no sender writes for the others
// for long. writing is set by whoever takes the role and cleared by the
// writer as it leaves.
const inlineBatches = 4

// kick makes sure a writer runs to send what was just queued.
func (c *Conn) kick() {
	if c.writing.Load() || !c.writing.CompareAndSwap(false, true) {
		return
	}
	if c.claim() {
		go c.writer()
	}
}

// nanotime is a monotonic clock in nanoseconds.
func nanotime() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()

// busyGap is how soon after the last inline write a link counts as busy.
const busyGap = 100 * time.Microsecond

// flush writes what is queued on the caller's goroutine, unless a writer
// runs already.
func (c *Conn) flush() {
	if c.writing.Load() || !c.writing.CompareAndSwap(false, true) {
		return
	}
	if !c.claim() {
		return
	}
	// On a busy link (it wrote moments ago) let the goroutines that are
	// ready to run go first: they are mostly other streams about to queue
	// a frame, which then share this write. (At 32 WebSocket echoes it
	// took the link's writes from 0.9 to 0.2 a message.) On a quiet link
	// there is nobody to wait for, and yielding only delays the frame.
	if now := nanotime(); now-c.lastFlush.Swap(now) < int64(busyGap) {
		runtime.Gosched()
	}
	for range inlineBatches {
		batch, err := c.nextNow()
		if batch == nil {
			if err != nil {
				c.writers.Done()
				c.Close(err)
				return
			}
			if c.leave() {
				c.writers.Done()
				return
			}
			continue
		}
		err = c.writeBatch(batch)
		if err != nil {
			c.writers.Done()
			c.Close(err)
			return
		}
	}
	go c.writer() // still the writer: a goroutine carries on
}

// claim makes the caller, which has just set writing, the writer; false
// when there is to be none: Run has not begun (writing is cleared, and
// Run kicks) or has ended (writing stays set, so nobody else tries).
// On true the caller holds writers until it leaves.
func (c *Conn) claim() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.started {
		c.writing.Store(false)
		return false
	}
	if c.stopped {
		return false
	}
	c.writers.Add(1)
	return true
}

// writer is the writer goroutine.
func (c *Conn) writer() {
	defer c.writers.Done()
	if err := c.write(); err != nil {
		c.Close(err)
	}
}

// pending reports whether anything waits for the writer.
func (c *Conn) pending() bool {
	return c.queued() > 0 || len(c.last) > 0 || c.pong.Load() != nil
}

// leave clears writing unless something was queued meanwhile, in which
// case the writer stays (or another one already took over). It reports
// whether the writer leaves.
func (c *Conn) leave() bool {
	c.writing.Store(false)
	if !c.pending() {
		return true
	}
	return !c.writing.CompareAndSwap(false, true)
}

// pingDue queues a Ping: nothing was written for a whole interval.
func (c *Conn) pingDue() {
	if c.TrySend(Frame(messages.TypePing, 0, messages.ID{}, nil)) {
		return
	}
	c.ping.Reset(c.opts.PingInterval) // full: the writer resets it once it writes
}

// TrySend queues b if there is room now, taking ownership of b either
// way. It is for callers that must never block, like a bus handler.
func (c *Conn) TrySend(b *Buffer) bool {
	select {
	case <-c.done:
		b.Free()
		return false
	default:
	}
	if !c.push(b) {
		b.Free()
		return false
	}
	c.kick()
	return true
}

// Close ends the link with err (nil means a normal close).
func (c *Conn) Close(err error) {
	if err == nil {
		err = ErrClosed
	}
	c.closeOnce.Do(func() {
		c.err = err
		close(c.done)
		c.ws.Close()
	})
}

// CloseWith ends the link with err after sending st as an Error frame of
// stream 0 ahead of anything queued, so the peer learns why. It does not
// block: the writer sends the frame, and the link closes within lastWait
// even if the frame cannot be written.
func (c *Conn) CloseWith(st messages.Status, err error) {
	if err == nil {
		err = ErrClosed
	}
	select {
	case <-c.done:
		return
	default:
	}
	b := Frame(messages.TypeError, 0, messages.ID{}, st.Append(nil))
	select {
	case c.last <- lastFrame{b: b, err: err}:
		c.kick()
		time.AfterFunc(lastWait, func() { c.Close(err) })
	default: // a last frame is already on its way
		b.Free()
		c.Close(err)
	}
}

// Run reads frames and hands them to handle until the link fails, ctx is
// done or Close is called. It starts the writer and waits for it before
// returning the reason the link ended.
func (c *Conn) Run(ctx context.Context, handle Handler) error {
	// Links sit idle in their thousands: the reader alone while nothing
	// is written, and no control frames from the WebSocket layer, which
	// would race the writer (keyhole has its own Ping).
	c.ws.SetPingHandler(func(string) error { return nil })
	c.ws.SetCloseHandler(func(int, string) error { return nil })
	stop := context.AfterFunc(ctx, func() { c.Close(ctx.Err()) })
	defer stop()
	c.wmu.Lock()
	c.ping = time.AfterFunc(c.opts.PingInterval, c.pingDue)
	c.started = true
	c.wmu.Unlock()
	c.kick() // for what was queued before Run
	c.Close(c.read(ctx, handle))
	c.wmu.Lock()
	c.stopped = true
	c.wmu.Unlock()
	c.writers.Wait()
	c.ping.Stop()
	c.drain()
	return c.err
}

func (c *Conn) read(ctx context.Context, handle Handler) error {
	for {
		b, err := c.readFrame()
		if err != nil {
			return err
		}
		f, err := messages.Parse(b.B)
		if err != nil {
			var version byte // of a frame long enough to have one
			if len(b.B) > 0 {
				version = b.B[0]
			}
			b.Free()
			err = fmt.Errorf("read: %w", err)
			if errors.Is(err, messages.ErrVersion) {
				c.refuseVersion(version, err)
			}
			return err
		}
		if c.opts.Limiter != nil {
			if err := c.opts.Limiter.Wait(ctx); err != nil {
				b.Free()
				return err
			}
		}
		if f.Type == messages.TypePing {
			if len(f.Payload) > messages.MaxPing {
				b.Free()
				return fmt.Errorf("read: %w: ping of %d bytes, limit %d", messages.ErrMalformed, len(f.Payload), messages.MaxPing)
			}
			c.answerPing(f, b)
			continue
		}
		if err := handle(f, b); err != nil {
			return err
		}
	}
}

// readFrame reads one WebSocket message into a pooled buffer, which holds
// exactly MaxFrame bytes: a message that fills it is whole if the reader
// has nothing more. The WebSocket read limit refuses longer ones first.
func (c *Conn) readFrame() (*Buffer, error) {
	c.extendDeadline()
	if c.raw != nil {
		if c.quiet && c.opts.ReadAhead() == 0 {
			if err := c.raw.Read(peekReady); err != nil {
				return nil, readError(err)
			}
		}
		defer c.noteRead()
	}
	if c.frames != nil {
		b := NewBuffer()
		buf := b.B[:cap(b.B)]
		n, err := c.frames.read(buf)
		if err != nil {
			b.Free()
			return nil, readError(err)
		}
		b.B = buf[:n]
		return b, nil
	}
	kind, r, err := c.ws.NextReader()
	if err != nil {
		return nil, readError(err)
	}
	if kind != websocket.BinaryMessage {
		return nil, fmt.Errorf("read: %w: text message on a link", messages.ErrMalformed)
	}
	b := NewBuffer()
	buf := b.B[:cap(b.B)]
	n, err := io.ReadFull(r, buf)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // shorter than the buffer
		err = nil
	case nil: // a full buffer: the message must end here
		err = atEnd(r)
	default:
		err = readError(err)
	}
	if err != nil {
		b.Free()
		return nil, err
	}
	b.B = buf[:n]
	return b, nil
}

// extendDeadline keeps the read deadline between Timeout and Timeout +
// Timeout/deadlineSlack away, moving it only when it has come nearer than
// Timeout: a busy link resets the socket's timer once a second or so,
// not once a frame.
func (c *Conn) extendDeadline() {
	now := time.Now()
	if c.deadline.Sub(now) >= c.opts.Timeout {
		return
	}
	c.deadline = now.Add(c.opts.Timeout + c.opts.Timeout/deadlineSlack)
	c.ws.SetReadDeadline(c.deadline)
}

// deadlineSlack: a link drops within Timeout/deadlineSlack after Timeout
// of silence.
const deadlineSlack = 20

// noteRead records when the reader had a frame, and whether it came
// after a quiet gap.
func (c *Conn) noteRead() {
	now := time.Now()
	c.quiet = now.Sub(c.lastRead) > quietGap
	c.lastRead = now
}

// atEnd checks that r, a message that has filled a whole buffer, has
// nothing left.
func atEnd(r io.Reader) error {
	var one [1]byte
	for {
		m, err := r.Read(one[:])
		switch {
		case m > 0:
			return fmt.Errorf("read: %w: message over %d bytes", messages.ErrTooLarge, messages.MaxFrame)
		case err == io.EOF:
			return nil
		case err != nil:
			return readError(err)
		}
	}
}

// readError wraps a WebSocket read failure; a message over the read limit
// is a frame too large.
func readError(err error) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		return fmt.Errorf("read: %w: message over %d bytes", messages.ErrTooLarge, messages.MaxFrame)
	}
	return fmt.Errorf("read: %w", err)
}

// StatusVersion is the status of the Error a link sends before it closes
// on a frame of another protocol version (HTTP Version Not Supported).
const StatusVersion = 505

// refuseVersion answers a frame of another protocol version with an Error
// on the link that names both versions (PROTOCOL.md section 13), and
// waits a moment for the writer to send it and end the link with err.
func (c *Conn) refuseVersion(version byte, err error) {
	st := messages.Status{
		Code: StatusVersion,
		Text: fmt.Sprintf("%v %d (this peer speaks version %d)", messages.ErrVersion, version, messages.Version),
	}
	b := Frame(messages.TypeError, 0, messages.ID{}, st.Append(nil))
	select {
	case c.last <- lastFrame{b: b, err: err}:
		c.kick()
	default: // CloseWith has sent its own
		b.Free()
	}
	t := time.NewTimer(lastWait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
}

// answerPing echoes a Ping's payload with FlagPong. Only the latest
// unanswered ping is kept, so pings cannot pile up in memory.
func (c *Conn) answerPing(f messages.Frame, b *Buffer) {
	if f.Flags&messages.FlagPong != 0 {
		b.Free()
		return
	}
	messages.PutHeader(b.B, messages.TypePing, messages.FlagPong, f.ID)
	if old := c.pong.Swap(b); old != nil {
		old.Free()
	}
	c.kick()
}

// write sends what is queued until nothing is, or the link ends; it
// returns nil when it leaves idle.
func (c *Conn) write() error {
	for {
		batch, err := c.nextNow()
		if batch == nil {
			if err != nil || c.leave() {
				return err
			}
			continue
		}
		if err := c.writeBatch(batch); err != nil {
			return err
		}
	}
}

// writeBatch writes frames the writer took, and frees them.
func (c *Conn) writeBatch(batch []*Buffer) error {
	err := c.writeFrames(batch)
	FreeAll(batch)
	if err != nil {
		return err
	}
	c.ping.Reset(c.opts.PingInterval)
	return nil
}

// nextNow returns what waits for the writer: the last frame (written
// here, and then the error that ends the link), else a Ping's answer,
// else up to maxBatch queued frames; nil if nothing waits, or the link
// has ended (then with why).
func (c *Conn) nextNow() ([]*Buffer, error) {
	select {
	case lf := <-c.last:
		c.writeFrames([]*Buffer{lf.b})
		lf.b.Free()
		return nil, lf.err
	case <-c.done:
		return nil, c.err
	default:
	}
	batch := c.batch[:0]
	if b := c.pong.Swap(nil); b != nil {
		batch = append(batch, b)
	}
	batch = c.take(batch)
	if len(batch) == 0 {
		return nil, nil
	}
	c.batch = batch
	return batch, nil
}

// writeFrames writes frames as WebSocket messages in one system call. Only
// the writer goroutine calls it.
func (c *Conn) writeFrames(bs []*Buffer) error {
	c.bufs = c.bufs[:0]
	for _, b := range bs {
		var key uint32
		if c.opts.Client {
			key = rand.Uint32()
		}
		c.bufs = b.wire(c.bufs, c.opts.Client, key)
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.opts.Timeout))
	c.wbufs = c.bufs // WriteTo consumes its receiver
	var err error
	if c.bw != nil {
		_, err = c.bw.WriteBuffers(&c.wbufs)
	} else {
		_, err = c.wbufs.WriteTo(c.nc)
	}
	clear(c.bufs) // hold no buffer after it has gone back to the pool
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// buffersWriter writes net.Buffers in as few system calls as it can,
// consuming them, as net.Buffers.WriteTo does for a *net.TCPConn.
type buffersWriter interface {
	WriteBuffers(*net.Buffers) (int64, error)
}

// drain frees whatever is still queued once the link has ended.
func (c *Conn) drain() {
	c.qmu.Lock()
	FreeAll(c.queue)
	c.queue = nil
	c.qmu.Unlock()
	for {
		select {
		case lf := <-c.last:
			lf.b.Free()
		default:
			if b := c.pong.Swap(nil); b != nil {
				b.Free()
			}
			return
		}
	}
}

// Logger returns the link's logger.
func (c *Conn) Logger() *slog.Logger { return c.opts.Logger }
