package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/hop"
	"keyhole/internal/link"
	"keyhole/internal/wsrelay"
	"keyhole/messages"
)

// serveWebSocket opens the visitor's WebSocket on the private service and
// relays it, or relays the service's refusal.
func (s *session) serveWebSocket(st *stream, head *messages.RequestHead) {
	if !s.authorize(st, head, messages.TypeWSResponse) {
		return
	}
	req, err := s.c.request(st, head, true)
	if err != nil {
		s.sendError(st.id, requestStatus(err), "keyhole client: "+err.Error())
		return
	}
	u := *req.URL
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	h := req.Header.Clone()
	hop.Remove(h)
	hop.RemoveHandshake(h)
	if ua := h["User-Agent"]; len(ua) == 1 && ua[0] == "" {
		delete(h, "User-Agent")
	}
	h["Host"] = []string{req.Host}

	rec := &recorder{dialer: s.c.cfg.Dial}
	d := websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  messages.MaxFrame + 16,
		NetDialContext:   rec.dial,
		NetDialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := s.c.cfg.Dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			host, _, _ := net.SplitHostPort(addr)
			tc := tls.Client(raw, &tls.Config{ServerName: host, InsecureSkipVerify: s.c.cfg.TargetInsecure})
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return rec.wrap(tc), nil
		},
	}
	start := time.Now()
	ws, resp, err := d.DialContext(st.ctx, u.String(), h)
	if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
		s.relayRefusal(st, rec, resp, head)
		return
	}
	if err != nil {
		rec.release()
		if st.ctx.Err() == nil {
			s.sendError(st.id, http.StatusBadGateway, "keyhole client: private service failed: "+err.Error())
		}
		return
	}
	rec.stop()
	rh := messages.ResponseHead{Status: resp.StatusCode, ContentLength: 0, Header: resp.Header}
	hop.Remove(rh.Header)
	hop.RemoveHandshake(rh.Header)
	b := link.NewBuffer()
	b.B = messages.AppendHeader(b.B, messages.TypeWSResponse, messages.FlagEnd, st.id)
	if b.B, err = messages.AppendResponseHead(b.B, &rh); err != nil {
		b.Free()
		ws.Close()
		s.sendError(st.id, http.StatusBadGateway, "keyhole client: "+err.Error())
		return
	}
	if st.send(b) != nil {
		ws.Close()
		return
	}
	s.log.Info("websocket", "uri", head.URI, "status", resp.StatusCode, "handshake", time.Since(start).Round(time.Microsecond))
	opts := wsrelay.Options{MaxMessage: s.maxBody}
	var done func(error)
	if s.c.cfg.WebSocketTap != nil {
		opts.Tap, done = s.c.cfg.WebSocketTap(req, resp)
	}
	err = wsrelay.Relay(st.ctx, ws, &wsStream{st}, opts)
	if done != nil {
		done(err)
	}
	s.log.Info("websocket closed", "uri", head.URI, "reason", err, "duration", time.Since(start).Round(time.Millisecond))
}

// relayRefusal sends the service's non-101 answer, with its whole body.
// The dialer read only the start of it; the recorder kept every byte the
// dialer read, so the response is parsed again from those bytes followed
// by the rest of the connection.
func (s *session) relayRefusal(st *stream, rec *recorder, partial *http.Response, head *messages.RequestHead) {
	defer rec.release()
	resp := partial
	if full, err := rec.reread(partial.Request); err == nil {
		resp = full
		defer full.Body.Close()
	}
	s.log.Info("websocket refused", "uri", head.URI, "status", resp.StatusCode)
	if _, err := s.relayResponseAs(st, resp, messages.TypeWSResponse); err != nil && st.ctx.Err() == nil {
		s.sendError(st.id, http.StatusBadGateway, "keyhole client: "+err.Error())
	}
}

// wsStream is a stream seen by the relay.
type wsStream struct{ *stream }

func (w *wsStream) ID() messages.ID { return w.id }

func (w *wsStream) Send(ctx context.Context, b *link.Buffer) error { return w.s.conn.Send(ctx, b) }

// recorder keeps the bytes a connection reads during a WebSocket
// handshake, and keeps the connection open past the dialer's failure, so
// a refusal can be read whole.
type recorder struct {
	dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	mu   sync.Mutex // protects all below
	conn net.Conn
	buf  bytes.Buffer
	on   bool
}

func (r *recorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := r.dialer(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return r.wrap(c), nil
}

func (r *recorder) wrap(c net.Conn) net.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn, r.on = c, true
	return &recordingConn{Conn: wsrelay.NewConn(c, true), r: r}
}

// stop ends recording once the handshake succeeded.
func (r *recorder) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	r.buf = bytes.Buffer{}
}

// release closes the connection if the handshake failed.
func (r *recorder) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	if r.conn != nil {
		r.conn.Close()
	}
}

// reread parses the whole response from the recorded bytes and the rest
// of the connection.
func (r *recorder) reread(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	rest := io.MultiReader(bytes.NewReader(r.buf.Bytes()), r.conn)
	r.on = false
	r.mu.Unlock()
	if r.conn == nil {
		return nil, errors.New("no connection")
	}
	r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(rest), req)
	if err != nil {
		return nil, fmt.Errorf("reread refusal: %w", err)
	}
	return resp, nil
}

// recordingConn is the service's WebSocket connection: it records the
// handshake's answer while the recorder is on; its writes are a
// wsrelay.Conn's.
type recordingConn struct {
	*wsrelay.Conn
	r *recorder
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.mu.Lock()
	if c.r.on && n > 0 && c.r.buf.Len() < 1<<20 {
		c.r.buf.Write(p[:n])
	}
	c.r.mu.Unlock()
	return n, err
}

// Close is deferred to the recorder while it records, so a refused
// handshake's body can still be read.
func (c *recordingConn) Close() error {
	c.r.mu.Lock()
	on := c.r.on
	c.r.mu.Unlock()
	if on {
		return nil
	}
	return c.Conn.Close()
}
