package proxy

import (
	"context"
	"errors"
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
	// credit reports whether the far end grants credit for HTTP bodies
	// (link revision 2); when it does not, bodies go without waiting.
	credit() bool
	// widen is how much wider than messages.InitialWindow a response
	// body's window may grow while its visitor keeps up: across nodes,
	// where credit takes longer to come back, a window of its own size
	// would leave the sender waiting.
	widen() int64
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
	case errors.Is(err, ErrBadBody):
		s.stats.BadBodies.Add(1)
	case errors.Is(err, ErrBodyTimeout):
		s.stats.BodyTimeouts.Add(1)
	case errors.Is(err, ErrLength):
		s.stats.LengthMismatches.Add(1)
	}
}

// forward sends one visitor request through the tunnel and writes the
// answer. An error returned means nothing has been written to w yet.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, label string) error {
	if err := limiter.CheckLength(r.ContentLength, s.cfg.MaxBody); err != nil {
		return err
	}
	out := s.outbound(r)
	head := messages.RequestHead{
		Method:        r.Method,
		URI:           r.RequestURI,
		Host:          r.Host,
		ContentLength: r.ContentLength,
		Fields:        out.appendFields,
	}
	if r.ContentLength < 0 && r.ProtoMajor == 1 {
		// Framed by Transfer-Encoding. net/http drops a Content-Length
		// beside it, so one that came with it cannot be told from one
		// that did not; RFC 9112 section 6.1 says to close after such a
		// request, lest a front that framed it by its length smuggle the
		// next one past us.
		w.Header().Set("Connection", "close")
	}
	body := newRequestBody(w, r, s.cfg.MaxBody, s.cfg.RequestTimeout)
	defer body.release()
	if err := body.prefetch(); err != nil {
		return err
	}
	again := retries{
		// Nothing of the body has gone anywhere yet.
		moved: true,
		// The client may have acted on it before its link went away.
		linkLost: head.ContentLength == 0 && idempotent(r.Method),
	}
	var last error
	return s.withRetries(r.Context(), label, again, func(up upstream) error {
		noteUpstream(w, up)
		if body.started() {
			return last // part of the body went with the failed attempt
		}
		last = s.exchange(w, r, up, &head, body)
		return last
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
			// routing now passes that node by. If it was the only one,
			// it may be subscribing again after a Redis failover: the
			// later tries wait for it a little.
			s.routes.forget(label)
			skipped++
			if err := sleepCtx(ctx, time.Duration(skipped-1)*goneWait); err != nil {
				return err
			}
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

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
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
