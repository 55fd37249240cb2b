package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"keyhole/internal/link"
	"keyhole/limiter"
	"keyhole/messages"
)

// exchange runs one attempt of a request on up: the head (with a small
// body that came with it), then the rest of the body from a goroutine
// while the answer is awaited and relayed. The request timeout runs from
// the end of the request body: a long upload is bounded by its idle
// bound instead.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request, up upstream, head *messages.RequestHead, body *requestBody) error {
	st := newStream(up.credit(), &s.stats.StreamOverflow)
	if err := up.attach(st.id, st); err != nil {
		return fmt.Errorf("%w: %w", errRetry, err)
	}
	defer st.Release()
	defer up.detach(st.id)

	if err := s.sendHead(r.Context(), up, st, head, body); err != nil {
		return err
	}
	ctx := r.Context()
	var m link.Inbound
	var err error
	if body.rest() {
		x := s.startBody(r, up, st, body)
		defer x.end()
		ctx = x.ctx
		m, err = x.await()
	} else {
		m, err = s.await(ctx, st)
	}
	if err != nil {
		s.cancelStream(up, st.id, err)
		if errors.Is(err, ErrTunnelGone) {
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		return err
	}
	return s.writeResponse(ctx, w, r, up, st, m, messages.TypeHTTPResponse)
}

// timers are stopped timers for await, so that a request arms one
// without allocating.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// await waits for the answer's first frame to a request whose body has
// all been sent, at most the request timeout.
func (s *Server) await(ctx context.Context, st *stream) (link.Inbound, error) {
	t := timers.Get().(*time.Timer)
	t.Reset(s.cfg.RequestTimeout)
	defer timers.Put(t)
	defer t.Stop() // with Go 1.23 timers, nothing is left in t.C after Stop
	return st.NextBefore(ctx, t.C, ErrTimeout)
}

// sending is an exchange whose request body goes on from a goroutine
// while the answer is awaited: its context ends when the body fails, and
// the request timeout runs from when the body has ended.
type sending struct {
	r        *http.Request
	st       *stream
	body     *requestBody
	ctx      context.Context
	cancel   context.CancelCauseFunc
	timer    *time.Timer
	answered atomic.Bool
	failed   atomic.Pointer[error] // why the body could not be sent
}

func (s *Server) startBody(r *http.Request, up upstream, st *stream, body *requestBody) *sending {
	x := &sending{r: r, st: st, body: body}
	x.ctx, x.cancel = context.WithCancelCause(r.Context())
	x.timer = time.AfterFunc(s.cfg.RequestTimeout, func() {
		if !x.answered.Load() {
			x.cancel(ErrTimeout)
		}
	})
	x.timer.Stop()
	// The body's failure is why the stream ends, even when net/http has
	// already canceled the request's context for the same broken read.
	body.start(x.ctx, up, st, func(err error) {
		x.failed.Store(&err)
		x.cancel(err)
	}, func() { x.timer.Reset(s.cfg.RequestTimeout) })
	return x
}

// await waits for the answer's first frame.
func (x *sending) await() (link.Inbound, error) {
	m, err := x.st.Next(x.ctx)
	if err != nil && x.r.Context().Err() != nil {
		x.body.wait() // net/http ended the request: maybe for the body's own failure
	}
	if e := x.failed.Load(); err != nil && e != nil {
		err = *e
	}
	if err == nil {
		x.answered.Store(true)
		x.timer.Stop()
	}
	return m, err
}

// end stops the timer, ends the context and waits for the body's
// goroutine, once the exchange is over.
func (x *sending) end() {
	x.timer.Stop()
	x.cancel(nil)
	x.body.wait()
}

// sendHead sends the HTTPRequest, and with it the body's first chunk if
// one was prefetched.
func (s *Server) sendHead(ctx context.Context, up upstream, st *stream, head *messages.RequestHead, body *requestBody) error {
	var flags messages.Flags
	if head.ContentLength == 0 {
		flags = messages.FlagEnd
	}
	b := link.NewBuffer()
	b.B = messages.AppendHeader(b.B, messages.TypeHTTPRequest, flags, st.id)
	var err error
	if b.B, err = messages.AppendRequestHead(b.B, head); err != nil {
		b.Free()
		return fmt.Errorf("%w: %w", limiter.ErrBodyTooLarge, err) // a head too large to frame
	}
	c := body.frame(st.id)
	if c == nil {
		err = up.send(ctx, b)
	} else {
		// The initial window always holds one chunk: this never waits.
		st.Window().Acquire(ctx, nil, link.Cost(len(c.B)-messages.HeaderSize))
		err = up.sendBatch(ctx, b, c)
		if err == nil {
			body.spent.Store(true)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %w: %w", errRetry, ErrTunnelGone, err)
	}
	return nil
}
