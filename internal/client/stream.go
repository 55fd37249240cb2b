package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"keyhole/internal/link"
	"keyhole/messages"
)

// Bounds of an HTTP stream's inbox on a link of revision 1, whose proxy
// sends request bodies without credit: a body within the proxy's cap is
// at most 8 Data frames. With credit the inbox holds what the window
// allows.
const (
	httpQueueFrames = 32
	httpQueueBytes  = 2 << 20
)

// errCanceled means the proxy abandoned the stream (the visitor left or
// timed out).
var errCanceled = errors.New("stream canceled by the proxy")

// proxyCanceled is the proxy's Error frame that abandoned a stream: the
// status its visitor got, and why.
type proxyCanceled struct {
	code int
	text string
}

func (e *proxyCanceled) Error() string {
	return fmt.Sprintf("%s: %d %s", errCanceled, e.code, e.text)
}

func (e *proxyCanceled) Unwrap() error { return errCanceled }

// stream is one request from a visitor, served by its own goroutine.
type stream struct {
	*link.Inbox
	id       messages.ID
	s        *session
	ws       bool                 // a WebSocket, not an HTTP request
	head     messages.RequestHead // what the proxy asked for
	ctx      *streamCtx
	received atomic.Int64            // request body bytes, counted as the service reads them
	end      context.CancelCauseFunc // ends ctx; see abandon
}

func newStream(id messages.ID, s *session, ws bool) *stream {
	ctx, cancel := context.WithCancelCause(context.Background())
	var in *link.Inbox
	if ws || s.credit {
		in = link.NewStreamInbox()
	} else {
		in = link.NewInbox(httpQueueFrames, httpQueueBytes, nil)
	}
	return &stream{Inbox: in, id: id, s: s, ws: ws, ctx: &streamCtx{Context: ctx}, end: cancel}
}

// abandon ends the stream with a cause that context.Cause(st.ctx) says,
// and breaks off the service connection its request is on.
func (st *stream) abandon(cause error) {
	st.end(cause)
	st.ctx.end()
}

// streamCtx is a stream's context. When the stream ends it also breaks
// off the one service connection that watch gave it, which costs nothing
// in the context tree as context.AfterFunc's registration does.
type streamCtx struct {
	context.Context // canceled when the stream ends

	mu    sync.Mutex
	conn  net.Conn // the connection to break off, nil if none
	ended bool
}

type streamCtxKey struct{}

func (c *streamCtx) Value(key any) any {
	if _, ok := key.(streamCtxKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// watch has conn's reads and writes broken off when the stream ends, and
// reports true, unless the stream has ended or watches one already.
func (c *streamCtx) watch(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.conn != nil {
		return false
	}
	c.conn = conn
	return true
}

// unwatch stops the watch; it reports false when the stream ended first,
// so that the connection has been broken off.
func (c *streamCtx) unwatch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = nil
	return !c.ended
}

func (c *streamCtx) end() {
	c.mu.Lock()
	conn := c.conn
	c.ended = true
	c.mu.Unlock()
	if conn != nil {
		conn.SetDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a deadline that breaks off a read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// cancel ends the stream because the proxy abandoned it or its link went.
func (st *stream) cancel() { st.abandon(errCanceled) }

// deliver queues a frame from the proxy. A stream whose inbox overflows
// is ended: the proxy broke its own limits, or the service stopped
// reading. An Error frame is the proxy abandoning the stream.
func (st *stream) deliver(f messages.Frame, b *link.Buffer) {
	if f.Type == messages.TypeError {
		e, _ := messages.ParseStatus(f.Payload)
		b.Free()
		st.abandon(&proxyCanceled{code: int(e.Code), text: e.Text})
		return
	}
	if !st.Deliver(f, b) {
		st.cancel()
	}
}

// next returns the next queued frame.
func (st *stream) next() (link.Inbound, error) { return st.Next(st.ctx) }

// acquire waits for the credit to send a Data frame of n bytes; on a
// stream without flow control it never waits.
func (st *stream) acquire(n int) error {
	return st.Acquire(st.ctx, link.Cost(n))
}

// send queues a frame toward the proxy.
func (st *stream) send(b *link.Buffer) error {
	return st.s.conn.Send(st.ctx, b)
}

// body reads a request body from the stream's Data frames, granting the
// proxy credit as the transport takes them. It fails, so that the service
// sees an aborted request, when the pieces add up to more or less than
// the declared length or pass the cap.
type body struct {
	st     *stream
	length int64 // declared, or -1
	n      int64 // bytes received so far
	cur    *link.Buffer
	rest   []byte
	done   bool
	grant  link.Grant
}

func (r *body) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		r.release()
		if r.done {
			return 0, io.EOF
		}
		m, err := r.st.next()
		if err != nil {
			return 0, err
		}
		if m.F.Type == messages.TypeCredit {
			m.B.Free() // revision 1: no credit on HTTP streams; ignored
			continue
		}
		if m.F.Type != messages.TypeData {
			m.B.Free()
			return 0, fmt.Errorf("%w: %v in a request body", messages.ErrMalformed, m.F.Type)
		}
		r.n += int64(len(m.F.Payload))
		r.st.received.Add(int64(len(m.F.Payload)))
		switch {
		case r.length >= 0 && (r.n > r.length || m.F.End() && r.n < r.length):
			m.B.Free()
			return 0, fmt.Errorf("request body of %d bytes, %d declared", r.n, r.length)
		case r.n > r.st.s.maxBody:
			m.B.Free()
			return 0, fmt.Errorf("request body over the proxy's cap of %d bytes", r.st.s.maxBody)
		}
		r.cur, r.rest, r.done = m.B, m.F.Payload, m.F.End()
		if r.length >= 0 && r.n == r.length && !r.done {
			// The last declared byte is here but not the End: hold it
			// back until the next frame shows whether more follows, so
			// a body that runs past its length never reaches the
			// service complete.
			if err := r.expectEnd(); err != nil {
				r.release()
				r.rest = nil
				return 0, err
			}
		}
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// expectEnd reads the frame after a body's last declared byte, which may
// only be an empty Data with End.
func (r *body) expectEnd() error {
	for {
		m, err := r.st.next()
		if err != nil {
			return err
		}
		f := m.F
		m.B.Free()
		switch {
		case f.Type == messages.TypeCredit:
			continue
		case f.Type == messages.TypeData && f.End() && len(f.Payload) == 0:
			r.done = true
			return nil
		case f.Type == messages.TypeData:
			return fmt.Errorf("request body past its declared %d bytes", r.length)
		default:
			return fmt.Errorf("%w: %v in a request body", messages.ErrMalformed, f.Type)
		}
	}
}

// release frees the frame the transport has taken whole, and grants its
// credit back.
func (r *body) release() {
	if r.cur == nil {
		return
	}
	n := len(r.cur.B) - messages.HeaderSize
	r.cur.Free()
	r.cur = nil
	if r.st.s.credit && !r.done {
		if c := r.grant.Consumed(r.st.id, n); c != nil {
			r.st.send(c)
		}
	}
}

func (r *body) Close() error {
	r.release()
	r.rest = nil
	return nil
}
