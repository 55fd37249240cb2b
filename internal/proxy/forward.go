package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"keyhole/internal/hop"
	"keyhole/internal/link"
	"keyhole/limiter"
	"keyhole/messages"
)

// upstream is where a stream's frames toward the client go: a link on this
// node, or the node holding the link, through the bus.
type upstream interface {
	attach(id messages.ID, k sink) error
	detach(id messages.ID)
	send(ctx context.Context, b *link.Buffer) error
	// sendBatch sends frames in order, in one write where it can.
	sendBatch(ctx context.Context, bs ...*link.Buffer) error
}

// errRetry means the link went away before the client saw anything it
// could have acted on, so another replica may serve the request.
var errRetry = errors.New("retry on another replica")

func (s *Server) serveTunnel(w http.ResponseWriter, r *http.Request, label, host string) {
	if ok, wait := s.tunnelRL.Allow(label, time.Now()); !ok {
		s.stats.RateLimited.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		s.fail(w, r, host, ErrRateLimited)
		return
	}
	if hop.IsWebSocket(r) {
		s.serveWebSocket(w, r, label, host)
		return
	}
	s.stats.Requests.Add(1)
	if err := s.forward(w, r, label); err != nil {
		s.count(err)
		s.fail(w, r, host, err)
	}
}

// count records a failed request in the counter for its cause.
func (s *Server) count(err error) {
	var ue *upstreamError
	switch {
	case errors.As(err, &ue):
		s.stats.UpstreamErrors.Add(1)
	case errors.Is(err, ErrNoTunnel):
		s.stats.NoTunnel.Add(1)
	case errors.Is(err, ErrTimeout):
		s.stats.Timeouts.Add(1)
	case errors.Is(err, limiter.ErrBodyTooLarge):
		s.stats.RequestTooLarge.Add(1)
	case errors.Is(err, ErrResponseTooLarge):
		s.stats.ResponseTooLarge.Add(1)
	case errors.Is(err, ErrRouting):
		s.stats.RoutingErrors.Add(1)
	case errors.Is(err, ErrTunnelGone):
		s.stats.TunnelGone.Add(1)
	}
}

// forward sends one visitor request through the tunnel and writes the
// answer. An error returned means nothing has been written to w yet.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, label string) error {
	if err := limiter.CheckLength(r.ContentLength, s.cfg.MaxBody); err != nil {
		return err
	}
	head := messages.RequestHead{
		Method:        r.Method,
		URI:           r.RequestURI,
		Host:          r.Host,
		ContentLength: r.ContentLength,
		Header:        s.outboundHeader(r),
	}
	var body []*link.Buffer
	if r.ContentLength < 0 {
		// A body of unknown length is read up to the cap before anything
		// is forwarded, so an oversized one is refused whole.
		var err error
		body, head.ContentLength, err = readCapped(r.Body, s.cfg.MaxBody)
		defer freeAll(body)
		if err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeoutCause(r.Context(), s.cfg.RequestTimeout, ErrTimeout)
	defer cancel()
	again := retries{
		// The body is at hand to send again: none, or read whole.
		moved: head.ContentLength == 0 || body != nil,
		// The client may have acted on it before its link went away.
		linkLost: head.ContentLength == 0 && idempotent(r.Method),
	}
	return s.withRetries(ctx, label, again, func(up upstream) error {
		return s.exchange(ctx, w, r, up, &head, body)
	})
}

// retries says when a request may be sent again.
type retries struct {
	moved    bool // the node the route named no longer held the tunnel (nothing ran)
	linkLost bool // a link here went away before an answer (the service may have run it)
}

// withRetries runs attempt on the way route finds to label, and again, on
// another way, where again allows: once when another node answered that it
// no longer holds the tunnel (its client moved), up to maxSkipped times
// when the node it named had no subscriber (it died; see gone.go), and
// once per link of this node that went away before the client answered.
func (s *Server) withRetries(ctx context.Context, label string, again retries, attempt func(upstream) error) error {
	var tried []*clientLink
	moved, skipped := false, 0
	for {
		up, l, err := s.route(ctx, label, tried)
		if err != nil {
			return err
		}
		err = attempt(up)
		switch {
		case err == nil:
			return nil
		case l == nil && again.moved && skipped < maxSkipped && errors.Is(err, errNodeGone):
			// The node the route named is gone: nothing ran, and
			// routing now passes that node by.
			s.routes.forget(label)
			skipped++
		case l == nil:
			s.routes.forget(label)
			if !again.moved || moved || !movedAway(err) {
				return err
			}
			moved = true
		case again.linkLost && errors.Is(err, errRetry):
			tried = append(tried, l)
		default:
			return err
		}
		s.stats.Retried.Add(1)
	}
}

// exchange runs one attempt of a request on up.
func (s *Server) exchange(ctx context.Context, w http.ResponseWriter, r *http.Request, up upstream, head *messages.RequestHead, body []*link.Buffer) error {
	st := newStream(func() { s.stats.StreamOverflow.Add(1) })
	if err := up.attach(st.id, st); err != nil {
		return fmt.Errorf("%w: %w", errRetry, err)
	}
	defer st.Release()
	defer up.detach(st.id)

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
	if n := head.ContentLength; n > 0 && n <= messages.MaxChunk && body == nil {
		// A small body goes out with its head in one write.
		c := link.Chunk()
		if _, err := io.ReadFull(r.Body, c.Payload()[:n]); err != nil {
			c.Free()
			b.Free()
			return fmt.Errorf("read request body: %w", err)
		}
		c.Seal(messages.TypeData, messages.FlagEnd, st.id, int(n))
		if err := up.sendBatch(ctx, b, c); err != nil {
			return fmt.Errorf("%w: %w: %w", errRetry, ErrTunnelGone, err)
		}
	} else {
		if err := up.send(ctx, b); err != nil {
			return fmt.Errorf("%w: %w: %w", errRetry, ErrTunnelGone, err)
		}
		if err := s.sendBody(ctx, up, st.id, r.Body, head.ContentLength, body); err != nil {
			s.cancelStream(up, st.id, err)
			return err
		}
	}

	m, err := st.Next(ctx)
	if err != nil {
		s.cancelStream(up, st.id, err)
		if errors.Is(err, ErrTunnelGone) {
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		return err
	}
	return s.writeResponse(w, r, up, st, m)
}

// sendBody forwards a request body of a known length as Data frames: from
// buffers already read, or straight from the visitor, chunk by chunk.
func (s *Server) sendBody(ctx context.Context, up upstream, id messages.ID, r io.Reader, length int64, buffered []*link.Buffer) error {
	if length == 0 {
		return nil
	}
	if buffered != nil {
		for i, b := range buffered {
			c := link.Chunk()
			n := copy(c.Payload(), b.B)
			var flags messages.Flags
			if i == len(buffered)-1 {
				flags = messages.FlagEnd
			}
			c.Seal(messages.TypeData, flags, id, n)
			if err := up.send(ctx, c); err != nil {
				return fmt.Errorf("%w: %w", ErrTunnelGone, err)
			}
		}
		return nil
	}
	for left := length; left > 0; {
		c := link.Chunk()
		n, err := io.ReadFull(r, c.Payload()[:min(left, messages.MaxChunk)])
		if err != nil {
			c.Free()
			return fmt.Errorf("read request body: %w", err)
		}
		left -= int64(n)
		var flags messages.Flags
		if left == 0 {
			flags = messages.FlagEnd
		}
		c.Seal(messages.TypeData, flags, id, n)
		if err := up.send(ctx, c); err != nil {
			return fmt.Errorf("%w: %w", ErrTunnelGone, err)
		}
	}
	return nil
}

// writeResponse writes the response whose first frame is m.
func (s *Server) writeResponse(w http.ResponseWriter, r *http.Request, up upstream, st *stream, m link.Inbound) error {
	first := m.F
	defer m.B.Free()
	switch first.Type {
	case messages.TypeHTTPResponse, messages.TypeWSResponse:
	case messages.TypeError:
		e, _ := messages.ParseStatus(first.Payload)
		return &upstreamError{code: int(e.Code), msg: e.Text}
	default:
		s.stats.ProtocolViolations.Add(1)
		s.cancelStream(up, st.id, ErrProtocol)
		return fmt.Errorf("%w: %v before the response head", ErrProtocol, first.Type)
	}
	head, err := messages.ParseResponseHead(first.Payload)
	if err != nil {
		s.cancelStream(up, st.id, err)
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if head.ContentLength > s.cfg.MaxBody {
		s.cancelStream(up, st.id, ErrResponseTooLarge)
		return fmt.Errorf("%w: %d bytes declared", ErrResponseTooLarge, head.ContentLength)
	}
	hop.Remove(head.Header)
	s.isolateCookies(head.Header, r.Host)
	dst := w.Header()
	for k, v := range head.Header {
		dst[k] = v
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
	if first.End() {
		return nil
	}
	// From here the status is sent: a failure can only cut the response
	// short, which the visitor sees as an aborted transfer, never as a
	// silently truncated body.
	var n int64
	ctx := r.Context()
	rc := http.NewResponseController(w)
	for {
		m, err := st.Next(ctx)
		if err != nil {
			s.count(err)
			s.cancelStream(up, st.id, err)
			panic(http.ErrAbortHandler)
		}
		f := m.F
		if f.Type == messages.TypeCredit {
			m.B.Free() // no flow control on HTTP streams: ignored
			continue
		}
		if f.Type != messages.TypeData {
			m.B.Free()
			s.count(ErrTunnelGone)
			s.cancelStream(up, st.id, ErrProtocol)
			panic(http.ErrAbortHandler)
		}
		if n += int64(len(f.Payload)); n > s.cfg.MaxBody {
			m.B.Free()
			s.stats.ResponseTooLarge.Add(1)
			s.log.Warn("response over the body cap", "tunnel", r.Host, "limit", s.cfg.MaxBody)
			s.cancelStream(up, st.id, ErrResponseTooLarge)
			panic(http.ErrAbortHandler)
		}
		// Each write gets its own deadline, so a stream (server-sent
		// events) may last while a visitor that stops reading cannot hold
		// it forever.
		rc.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout + streamWriteGrace))
		_, err = w.Write(f.Payload)
		m.B.Free()
		if err != nil {
			s.cancelStream(up, st.id, err)
			return nil // the visitor went away
		}
		if f.End() {
			return nil
		}
		if st.Len() == 0 {
			rc.Flush() // stream as it arrives: nothing else is waiting
		}
	}
}

// idempotent reports whether a request may be sent again after a link
// died with it (RFC 9110 section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// movedAway reports whether a remote node answered that it holds no link
// for the tunnel: its relay's Error with the no-tunnel status, before any
// response.
func movedAway(err error) bool {
	var ue *upstreamError
	return errors.As(err, &ue) && ue.code == http.StatusNotFound
}

// cancelStream tells the client to abandon a stream (the visitor left,
// timed out, or the response broke a rule).
func (s *Server) cancelStream(up upstream, id messages.ID, cause error) {
	st := messages.Status{Code: uint16(status(cause)), Text: cause.Error()}
	up.send(s.ctx, link.Frame(messages.TypeError, 0, id, st.Append(nil)))
}

// readCapped reads all of r into chunk-sized buffers, refusing more than
// max bytes.
func readCapped(r io.Reader, max int64) ([]*link.Buffer, int64, error) {
	cr := limiter.NewCappedReader(r, max)
	var bufs []*link.Buffer
	var total int64
	for {
		b := link.NewBuffer()
		b.B = b.B[:messages.MaxChunk]
		n, err := io.ReadFull(cr, b.B)
		b.B = b.B[:n]
		total += int64(n)
		if n > 0 {
			bufs = append(bufs, b)
		} else {
			b.Free()
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return bufs, total, nil
		case err != nil:
			freeAll(bufs)
			return nil, 0, fmt.Errorf("read request body: %w", err)
		}
	}
}

func freeAll(bs []*link.Buffer) {
	for _, b := range bs {
		b.Free()
	}
}

// route picks where a request for label goes: a link on this node if one
// is up, else a node that holds one.
func (s *Server) route(ctx context.Context, label string, skip []*clientLink) (upstream, *clientLink, error) {
	if t := s.tunnel(label); t != nil {
		if l := t.pick(skip); l != nil {
			return l, l, nil
		}
	}
	up, err := s.remoteRoute(ctx, label)
	if err != nil && len(skip) > 0 {
		// The links tried here went away and no other node has one.
		return nil, nil, ErrTunnelGone
	}
	return up, nil, err
}
