package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	st := newStream(up.credit(), func() { s.stats.StreamOverflow.Add(1) })
	if err := up.attach(st.id, st); err != nil {
		return fmt.Errorf("%w: %w", errRetry, err)
	}
	defer st.Release()
	defer up.detach(st.id)

	ctx, cancel := context.WithCancelCause(r.Context())
	var answered atomic.Bool
	timer := time.AfterFunc(s.cfg.RequestTimeout, func() {
		if !answered.Load() {
			cancel(ErrTimeout)
		}
	})
	timer.Stop()
	defer body.wait()
	defer cancel(nil)
	defer timer.Stop()

	if err := s.sendHead(ctx, up, st, head, body); err != nil {
		return err
	}
	// The body's failure is why the stream ends, even when net/http has
	// already canceled the request's context for the same broken read.
	var failed atomic.Pointer[error]
	body.start(ctx, up, st, func(err error) {
		failed.Store(&err)
		cancel(err)
	}, func() { timer.Reset(s.cfg.RequestTimeout) })

	m, err := st.Next(ctx)
	if err != nil && r.Context().Err() != nil {
		body.wait() // net/http ended the request: maybe for the body's own failure
	}
	if e := failed.Load(); err != nil && e != nil {
		err = *e
	}
	if err != nil {
		s.cancelStream(up, st.id, err)
		if errors.Is(err, ErrTunnelGone) {
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		return err
	}
	answered.Store(true)
	timer.Stop()
	return s.writeResponse(ctx, w, r, up, st, m, messages.TypeHTTPResponse)
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
