package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"keyhole/internal/link"
	"keyhole/messages"
)

// Bounds of a stream's inbox: an HTTP request body within the proxy's cap
// is at most 8 Data frames; a WebSocket may queue many small messages for
// a slow service.
const (
	httpQueueFrames = 32
	httpQueueBytes  = 2 << 20
)

// errCanceled means the proxy abandoned the stream (the visitor left or
// timed out).
var errCanceled = errors.New("stream canceled by the proxy")

// stream is one request from a visitor, served by its own goroutine.
type stream struct {
	*link.Inbox
	id     messages.ID
	s      *session
	ctx    context.Context
	cancel context.CancelFunc
}

func newStream(id messages.ID, s *session, ws bool) *stream {
	ctx, cancel := context.WithCancelCause(context.Background())
	in := link.NewInbox(httpQueueFrames, httpQueueBytes, nil)
	if ws {
		// Flow controlled: the inbox holds what the proxy's window allows.
		in = link.NewInbox(1<<20, messages.InitialWindow+2*link.Cost(messages.MaxChunk), link.NewWindow(messages.InitialWindow))
	}
	return &stream{
		Inbox: in,
		id:    id, s: s,
		ctx:    ctx,
		cancel: func() { cancel(errCanceled) },
	}
}

// deliver queues a frame from the proxy. A stream whose inbox overflows
// is ended: the proxy broke its own limits, or the service stopped
// reading. An Error frame is the proxy abandoning the stream.
func (st *stream) deliver(f messages.Frame, b *link.Buffer) {
	if f.Type == messages.TypeError {
		b.Free()
		st.cancel()
		return
	}
	if !st.Deliver(f, b) {
		st.cancel()
	}
}

// next returns the next queued frame.
func (st *stream) next() (link.Inbound, error) { return st.Next(st.ctx) }

// send queues a frame toward the proxy.
func (st *stream) send(b *link.Buffer) error {
	return st.s.conn.Send(st.ctx, b)
}

// body reads a request body from the stream's Data frames.
type body struct {
	st   *stream
	cur  *link.Buffer
	rest []byte
	done bool
}

func (r *body) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		if r.cur != nil {
			r.cur.Free()
			r.cur = nil
		}
		if r.done {
			return 0, io.EOF
		}
		m, err := r.st.next()
		if err != nil {
			return 0, err
		}
		if m.F.Type == messages.TypeCredit {
			m.B.Free() // no flow control on HTTP streams: ignored
			continue
		}
		if m.F.Type != messages.TypeData {
			m.B.Free()
			return 0, fmt.Errorf("%w: %v in a request body", messages.ErrMalformed, m.F.Type)
		}
		r.cur, r.rest, r.done = m.B, m.F.Payload, m.F.End()
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

func (r *body) Close() error {
	if r.cur != nil {
		r.cur.Free()
		r.cur = nil
		r.rest = nil
	}
	return nil
}
