package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"keyhole/internal/hop"
	"keyhole/internal/link"
	"keyhole/messages"
)

// writeResponse writes the response whose first frame is m, a head of
// type want (HTTPResponse, or WSResponse for a refused WebSocket). An
// error returned means nothing has been written to w yet.
func (s *Server) writeResponse(ctx context.Context, w http.ResponseWriter, r *http.Request, up upstream, st *stream, m link.Inbound, want messages.Type) error {
	head, err := s.responseHead(r, m.F, want)
	end := m.F.End()
	m.B.Free()
	if err != nil {
		s.cancelStream(up, st.id, err)
		return err
	}
	s.writeHead(w, r, &head)
	if end {
		return nil
	}
	s.copyResponse(ctx, w, r, up, st, head.ContentLength)
	return nil
}

// responseHead checks the first frame of an answer: an Error from the
// client, or a head the visitor can be given.
func (s *Server) responseHead(r *http.Request, f messages.Frame, want messages.Type) (messages.ResponseHead, error) {
	if f.Type == messages.TypeError {
		e, _ := messages.ParseStatus(f.Payload)
		return messages.ResponseHead{}, &upstreamError{code: int(e.Code), msg: e.Text}
	}
	if f.Type != want {
		s.stats.ProtocolViolations.Add(1)
		return messages.ResponseHead{}, fmt.Errorf("%w: %v before the response head", ErrProtocol, f.Type)
	}
	head, err := messages.ParseResponseHead(f.Payload)
	switch {
	case err != nil:
		return head, fmt.Errorf("%w: %w", ErrProtocol, err)
	case head.Status < 200:
		// Informational answers (a 101 the visitor did not ask for, a
		// 103) are never final: net/http would invent a 200 after them.
		s.stats.ProtocolViolations.Add(1)
		return head, fmt.Errorf("%w: status %d as the final answer", ErrProtocol, head.Status)
	case head.ContentLength > s.cfg.MaxBody:
		return head, fmt.Errorf("%w: %d bytes declared", ErrResponseTooLarge, head.ContentLength)
	case f.End() && head.ContentLength > 0 && bodyAllowed(r.Method, head.Status):
		return head, fmt.Errorf("%w: %d bytes declared and none sent", ErrLength, head.ContentLength)
	}
	return head, nil
}

// bodyAllowed reports whether a response to method with status carries a
// body (RFC 9110 section 6.4.1).
func bodyAllowed(method string, status int) bool {
	return method != http.MethodHead && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// writeHead writes the status and header. The framing is the head's
// length field, never a Content-Length of the header block, so the
// visitor gets exactly one length, the one the body is checked against.
func (s *Server) writeHead(w http.ResponseWriter, r *http.Request, head *messages.ResponseHead) {
	hop.Remove(head.Header)
	s.isolateCookies(head.Header, r.Host)
	cl := head.Header["Content-Length"]
	delete(head.Header, "Content-Length")
	dst := w.Header()
	for k, v := range head.Header {
		dst[k] = v
	}
	if head.ContentLength >= 0 {
		dst["Content-Length"] = lengthField(cl, head.ContentLength)
	}
	// net/http would add what the service left out: a Content-Type
	// sniffed from the body (which could turn a harmless body into HTML)
	// and a Date. A present but nil field stops it.
	for _, k := range [...]string{"Content-Type", "Date"} {
		if _, ok := dst[k]; !ok {
			dst[k] = nil
		}
	}
	w.WriteHeader(head.Status)
}

// lengthField is the Content-Length field for a length of n: the one the
// service sent, when it is exactly that (as it nearly always is), so that
// its slice and string serve again.
func lengthField(sent []string, n int64) []string {
	if len(sent) == 1 && plainDecimal(sent[0]) {
		if v, err := strconv.ParseInt(sent[0], 10, 64); err == nil && v == n {
			return sent
		}
	}
	return []string{strconv.FormatInt(n, 10)}
}

// plainDecimal reports whether s is a number as strconv.FormatInt writes
// one that is not negative: digits only, no leading zero.
func plainDecimal(s string) bool {
	if s == "" || s[0] == '0' && len(s) > 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// copyResponse writes the body's Data frames to the visitor as they come,
// granting credit back as the visitor's socket takes them. The status has
// been sent: a failure can only cut the response short, which the visitor
// sees as an aborted transfer, never as a complete one.
func (s *Server) copyResponse(ctx context.Context, w http.ResponseWriter, r *http.Request, up upstream, st *stream, length int64) {
	var n int64
	var grant link.Grant
	widen := up.widen()
	rc := http.NewResponseController(w)
	abort := func(err error) {
		noteFailure(w, err)
		s.count(err)
		s.log.Warn("response cut off", "tunnel", r.Host, "sent", n, "err", err)
		s.cancelStream(up, st.id, err)
		panic(http.ErrAbortHandler)
	}
	for {
		m, err := st.Next(ctx)
		if err != nil {
			abort(err)
		}
		f := m.F
		switch f.Type {
		case messages.TypeData:
		case messages.TypeError:
			e, _ := messages.ParseStatus(f.Payload)
			m.B.Free()
			abort(&upstreamError{code: int(e.Code), msg: e.Text})
		default:
			m.B.Free()
			s.stats.ProtocolViolations.Add(1)
			abort(fmt.Errorf("%w: %v in a response body", ErrProtocol, f.Type))
		}
		n += int64(len(f.Payload))
		switch {
		case n > s.cfg.MaxBody:
			m.B.Free()
			abort(fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, s.cfg.MaxBody))
		case length >= 0 && (n > length || f.End() && n < length):
			m.B.Free()
			abort(fmt.Errorf("%w: %d bytes declared, %d sent", ErrLength, length, n))
		}
		// Each write gets its own deadline, so a stream (server-sent
		// events) may last while a visitor that stops reading cannot hold
		// it forever.
		rc.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout + streamWriteGrace))
		_, err = w.Write(f.Payload)
		size := len(f.Payload)
		m.B.Free()
		if err != nil {
			s.cancelStream(up, st.id, err)
			return // the visitor went away
		}
		if f.End() {
			return
		}
		if st.Len() == 0 {
			rc.Flush() // stream as it arrives: nothing else is waiting
		}
		if up.credit() {
			if widen > 0 && n >= messages.InitialWindow/4 && st.Len() == 0 {
				// The visitor took all there was: the window, not the
				// visitor, holds the body back. Widen it, once.
				st.Widen(widen)
				grant.Widen(widen)
				widen = 0
			}
			if c := grant.Consumed(st.id, size); c != nil {
				up.send(ctx, c)
			}
		}
	}
}
