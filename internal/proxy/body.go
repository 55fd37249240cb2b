package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"keyhole/internal/link"
	"keyhole/limiter"
	"keyhole/messages"
)

// requestBody is a visitor's request body, sent on as Data frames as it
// arrives, beside the wait for the answer. Every read has a deadline: a
// body that stops arriving for the idle bound fails with ErrBodyTimeout.
//
// A small declared body that came with its head is read first (prefetch)
// and goes out with the head in one write; the rest of any body is sent
// by one goroutine (start), which wait ends and waits for.
type requestBody struct {
	r      *http.Request
	rc     http.ResponseController
	src    io.Reader // r.Body, capped when the length is unknown
	length int64     // declared, or -1
	idle   time.Duration

	pending  *link.Buffer // prefetched bytes, in a Chunk's payload; nil if none
	pendingN int
	taken    int64       // bytes read from the visitor
	eof      bool        // the visitor's body has ended
	spent    atomic.Bool // some of the body went to an upstream
	read     atomic.Bool // the sender has read the body to its end
	done     chan error  // the running sender's result; nil when none runs
}

func newRequestBody(w http.ResponseWriter, r *http.Request, maxBody int64, idle time.Duration) *requestBody {
	b := &requestBody{r: r, rc: *http.NewResponseController(w), src: r.Body, length: r.ContentLength, idle: idle}
	if b.length != 0 {
		// The answer may start while the body still arrives.
		b.rc.EnableFullDuplex()
	}
	if b.length < 0 {
		b.src = limiter.NewCappedReader(r.Body, maxBody)
	}
	return b
}

// started reports whether part of the body went to an upstream, so that
// the request cannot be sent again elsewhere.
func (b *requestBody) started() bool { return b.spent.Load() }

// complete reports whether every byte of the body has been read.
func (b *requestBody) complete() bool { return b.length >= 0 && b.taken == b.length }

// prefetch reads, for a declared body of at most one chunk, what the
// visitor has sent of it so far (at least a byte).
func (b *requestBody) prefetch() error {
	if b.length <= 0 || b.length > messages.MaxChunk {
		return nil
	}
	b.pending = link.Chunk()
	n, err := b.readChunk(b.pending.Payload()[:b.length])
	b.pendingN = n
	if err == io.EOF && !b.complete() {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		return b.readErr(err)
	}
	return nil
}

// frame returns the Data frame of the prefetched bytes for stream id,
// or nil. The bytes stay for another attempt.
func (b *requestBody) frame(id messages.ID) *link.Buffer {
	if b.pending == nil {
		return nil
	}
	c := link.Chunk()
	copy(c.Payload(), b.pending.Payload()[:b.pendingN])
	var flags messages.Flags
	if b.complete() {
		flags = messages.FlagEnd
	}
	c.Seal(messages.TypeData, flags, id, b.pendingN)
	return c
}

// rest reports whether part of the body is left to send after the head
// and what came with it.
func (b *requestBody) rest() bool { return b.length != 0 && !b.complete() }

// start sends the rest of the body of stream st to up from a goroutine.
// It calls fail if the body cannot be sent whole, and ended once it has
// been.
func (b *requestBody) start(ctx context.Context, up upstream, st *stream, fail func(error), ended func()) {
	if !b.rest() {
		ended()
		return
	}
	b.done = make(chan error, 1)
	go func() {
		err := b.copy(ctx, up, st)
		if err == nil {
			ended()
		} else {
			fail(err) // harmless once the exchange is over
		}
		b.done <- err
	}()
}

// wait ends a running sender and waits for it: a read blocked on the
// visitor is woken by a deadline in the past. A sender that has read the
// body to its end blocks only on ctx, which the caller has ended, and
// gets no deadline: net/http starts its own background read of the
// connection once the body has ended, and a deadline in the past fails
// that read, which cancels the context of the connection's next request.
func (b *requestBody) wait() {
	if b.done != nil {
		select {
		case <-b.done:
		default:
			if !b.read.Load() {
				b.rc.SetReadDeadline(time.Now())
			}
			<-b.done
		}
		b.done = nil
	}
}

// release frees what the body holds, once no attempt is left.
func (b *requestBody) release() {
	b.wait()
	if b.length != 0 && !b.eof {
		b.drain()
	}
	if b.pending != nil {
		b.pending.Free()
		b.pending = nil
	}
}

// copy sends the body as Data frames of what each read returns, within
// the stream's credit.
func (b *requestBody) copy(ctx context.Context, up upstream, st *stream) error {
	for {
		c := link.Chunk()
		want := int64(messages.MaxChunk)
		if b.length >= 0 {
			want = min(want, b.length-b.taken)
		}
		n, err := b.readChunk(c.Payload()[:want])
		if err == io.EOF && b.length >= 0 && !b.complete() {
			err = io.ErrUnexpectedEOF
		}
		end := err == io.EOF || b.complete()
		if err != nil && err != io.EOF {
			c.Free()
			return b.readErr(err)
		}
		if end {
			b.read.Store(true)
		}
		if n == 0 && !end {
			c.Free()
			continue
		}
		if err := b.acquire(ctx, st, n); err != nil {
			c.Free()
			return err
		}
		var flags messages.Flags
		if end {
			flags = messages.FlagEnd
		}
		c.Seal(messages.TypeData, flags, st.id, n)
		b.spent.Store(true)
		if err := up.send(ctx, c); err != nil {
			return fmt.Errorf("%w: %w", ErrTunnelGone, err)
		}
		if end {
			return nil
		}
	}
}

// readChunk reads what the visitor has sent, up to len(p) bytes, within
// the idle bound. An empty p reads nothing and reports io.EOF.
func (b *requestBody) readChunk(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, io.EOF
	}
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.src.Read(p)
	b.taken += int64(n)
	b.eof = b.eof || err == io.EOF
	return n, err
}

// Bounds on reading what is left of a body the answer did not need.
const (
	drainBytes = 256 << 10
	drainWait  = 100 * time.Millisecond
)

// drain reads what is left of a body the answer did not need, a little
// and briefly, so that when the handler returns net/http finds the body
// either ended or its connection failing. A body it would go on reading
// itself after a full-duplex handler breaks its next read of the
// connection, so it must never find one.
func (b *requestBody) drain() {
	b.rc.SetReadDeadline(time.Now().Add(drainWait))
	if _, err := io.CopyN(io.Discard, b.r.Body, drainBytes); err != io.EOF {
		b.rc.SetReadDeadline(time.Now()) // the connection closes after the answer
	}
}

// readErr says what a failed read of the visitor's body means.
func (b *requestBody) readErr(err error) error {
	switch {
	case errors.Is(err, limiter.ErrBodyTooLarge):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: nothing for %v", ErrBodyTimeout, b.idle)
	case b.r.Context().Err() != nil:
		return context.Cause(b.r.Context())
	default:
		return fmt.Errorf("%w: %w", ErrBadBody, err)
	}
}

// acquire waits for credit to send n bytes, at most the idle bound: a
// service that stops reading the body holds it back that long.
func (b *requestBody) acquire(ctx context.Context, st *stream, n int) error {
	ctx, cancel := context.WithTimeoutCause(ctx, b.idle, ErrTimeout)
	defer cancel()
	return st.Acquire(ctx, link.Cost(n))
}
