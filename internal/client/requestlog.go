package client

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"keyhole/internal/logline"
	"keyhole/messages"
)

// outcome is how one visitor request went, for its one log line.
type outcome struct {
	start   time.Time
	service int   // the service's status, 0 if it gave none
	status  int   // the status the client sent the proxy, 0 if none
	out     int64 // response body bytes sent
	err     error // why it failed, if it did
	cut     bool  // it failed after its head had gone
}

// unsentError is a relay failure before the response head went to the
// proxy: the visitor gets the client's 502, not the service's status.
type unsentError struct{ error }

func (e unsentError) Unwrap() error { return e.error }

// canceledBy returns the proxy's Error that err comes from, or nil. (In a
// function of its own, a request that ends well allocates nothing for it.)
func canceledBy(err error) *proxyCanceled {
	if err == nil {
		return nil
	}
	var pc *proxyCanceled
	if !errors.As(err, &pc) {
		return nil
	}
	return pc
}

// logRequest writes a request's one line: what the service answered, what
// the client sent on, and whether the proxy abandoned the stream (with
// the status it gave the visitor), and counts it.
func (s *session) logRequest(st *stream, head *messages.RequestHead, x *outcome) {
	// The proxy's Error ended the request, unless the client had failed it
	// first: then the Error only answers the client's own.
	pc := canceledBy(context.Cause(st.ctx))
	canceled := pc != nil && (x.err == nil || errors.Is(x.err, context.Canceled) || errors.Is(x.err, errCanceled))
	in := st.received.Load()
	stats := &s.c.stats
	stats.bytesIn.Add(in)
	stats.bytesOut.Add(x.out)
	class := classOf(x.status)
	if canceled || x.cut || x.status == 0 {
		class = classError
	}
	stats.requests[class].Add(1)
	if canceled {
		stats.canceled.Add(1)
	}
	level := slog.LevelInfo
	if x.err != nil && !canceled {
		level = slog.LevelWarn
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("method", head.Method),
		slog.String("uri", head.URI),
		slog.Int("status", x.status),
	)
	if x.service != 0 && x.service != x.status {
		attrs = append(attrs, slog.Int("service_status", x.service))
	}
	attrs = append(attrs,
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", x.out),
		slog.Duration("duration", time.Since(x.start).Round(time.Microsecond)),
	)
	if x.cut {
		attrs = append(attrs, slog.Bool("cut_off", true))
	}
	if canceled {
		attrs = append(attrs, slog.Int("proxy_status", pc.code), slog.String("proxy_canceled", pc.text))
	} else if x.err != nil {
		attrs = append(attrs, slog.String("err", x.err.Error()))
	}
	logline.Log(s.log, level, "request", attrs...)
}
