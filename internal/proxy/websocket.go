package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/hop"
	"keyhole/internal/link"
	"keyhole/internal/wsrelay"
	"keyhole/messages"
)

var wsBuffers sync.Pool

// serveWebSocket relays a visitor's WebSocket. The visitor is upgraded
// only after the private service has answered 101; any other answer is
// relayed to the visitor as it is.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, label, host string) {
	s.wg.Add(1)
	defer s.wg.Done()
	s.stats.WebSockets.Add(1)
	if err := s.relayWebSocket(w, r, label); err != nil {
		s.count(err)
		s.fail(w, r, host, err)
	}
}

// relayWebSocket returns an error only while nothing has been written.
func (s *Server) relayWebSocket(w http.ResponseWriter, r *http.Request, label string) error {
	out := s.outbound(r)
	out.handshake = true
	head := messages.RequestHead{URI: r.RequestURI, Host: r.Host, Fields: out.appendFields}
	ctx, cancel := context.WithTimeoutCause(r.Context(), s.cfg.RequestTimeout, ErrTimeout)
	defer cancel()
	// A handshake has no body, so it can be sent again when its link or
	// route went away before the service answered.
	return s.withRetries(ctx, label, retries{moved: true, linkLost: true}, func(up upstream) error {
		noteUpstream(w, up)
		return s.openWebSocket(ctx, w, r, up, &head)
	})
}

// openWebSocket runs one attempt of a handshake on up and, if the service
// agrees, the socket.
func (s *Server) openWebSocket(ctx context.Context, w http.ResponseWriter, r *http.Request, up upstream, head *messages.RequestHead) error {
	st := newStream(true, &s.stats.StreamOverflow)
	if err := up.attach(st.id, st); err != nil {
		return fmt.Errorf("%w: %w", errRetry, err)
	}
	defer st.Release()
	defer up.detach(st.id)
	b := link.NewBuffer()
	b.B = messages.AppendHeader(b.B, messages.TypeWSRequest, messages.FlagEnd, st.id)
	var err error
	if b.B, err = messages.AppendRequestHead(b.B, head); err != nil {
		b.Free()
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if err := up.send(ctx, b); err != nil {
		return fmt.Errorf("%w: %w: %w", errRetry, ErrTunnelGone, err)
	}
	m, err := st.Next(ctx)
	if err != nil {
		s.cancelStream(up, st.id, err)
		if errors.Is(err, ErrTunnelGone) {
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		return err
	}
	if m.F.Type != messages.TypeWSResponse {
		return s.writeResponse(ctx, w, r, up, st, m, messages.TypeWSResponse)
	}
	resp, err := messages.ParseResponseHead(m.F.Payload)
	if err != nil || resp.Status != http.StatusSwitchingProtocols {
		// A refusal: status, headers and body go back as they are.
		return s.writeResponse(ctx, w, r, up, st, m, messages.TypeWSResponse)
	}
	m.B.Free()
	return s.upgrade(w, r, up, st, resp.Header)
}

// upgrade completes the visitor's handshake with what the service agreed
// to, then relays messages until either side closes.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, up upstream, st *stream, h http.Header) error {
	protocol := h.Get("Sec-Websocket-Protocol")
	hop.Remove(h)
	hop.RemoveHandshake(h)
	delete(h, "Sec-Websocket-Protocol")
	s.isolateCookies(h, r.Host)
	u := websocket.Upgrader{
		// A buffer of its own, so the socket is read through the
		// connection the visit counts, not net/http's reader.
		ReadBufferSize:  4096,
		WriteBufferSize: messages.MaxFrame + 16,
		WriteBufferPool: &wsBuffers,
		CheckOrigin:     func(*http.Request) bool { return true }, // the service judged Origin
	}
	if protocol != "" {
		u.Subprotocols = []string{protocol}
	}
	ws, err := u.Upgrade(w, r, h)
	if err != nil {
		// The upgrader has answered the visitor; the service's socket goes.
		s.cancelStream(up, st.id, err)
		return nil
	}
	s.stats.WebSocketsActive.Add(1)
	defer s.stats.WebSocketsActive.Add(-1)
	ws.NetConn().SetDeadline(time.Time{})
	err = wsrelay.Relay(s.ctx, ws, &wsStream{stream: st, up: up}, wsrelay.Options{MaxMessage: s.cfg.MaxBody})
	if errors.Is(err, link.ErrOverflow) {
		s.log.Info("websocket closed: visitor reads too slowly", "host", r.Host)
	}
	return nil
}

// wsStream is a visitor stream seen by the relay.
type wsStream struct {
	*stream
	up upstream
}

func (w *wsStream) ID() messages.ID { return w.id }

func (w *wsStream) Send(ctx context.Context, b *link.Buffer) error { return w.up.send(ctx, b) }
