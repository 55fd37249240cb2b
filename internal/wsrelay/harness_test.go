package wsrelay

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/link"
	"keyhole/messages"
)

// memStream is one side of an in-memory keyhole stream: what it sends is
// delivered to its peer's inbox, as a link would.
type memStream struct {
	id   messages.ID
	in   *link.Inbox
	peer *memStream
}

func memPair() (a, b *memStream) {
	id := messages.NewID()
	newInbox := func() *link.Inbox {
		return link.NewInbox(1<<20, messages.InitialWindow+2*link.Cost(messages.MaxChunk), link.NewWindow(messages.InitialWindow))
	}
	a = &memStream{id: id, in: newInbox()}
	b = &memStream{id: id, in: newInbox(), peer: a}
	a.peer = b
	return a, b
}

func (m *memStream) ID() messages.ID { return m.id }

func (m *memStream) Next(ctx context.Context) (link.Inbound, error) { return m.in.Next(ctx) }

func (m *memStream) Send(_ context.Context, b *link.Buffer) error {
	f, err := messages.Parse(b.B)
	if err != nil {
		b.Free()
		return err
	}
	if !m.peer.in.Deliver(f, b) {
		return link.ErrOverflow
	}
	return nil
}

func (m *memStream) Done() <-chan struct{} { return m.in.Done() }
func (m *memStream) Err() error            { return m.in.Err() }
func (m *memStream) Window() *link.Window  { return m.in.Window() }

func (m *memStream) SetInline(f func(*link.Inbound) bool) { m.in.SetInline(f) }

var _ Stream = (*memStream)(nil)

// tunnel runs a relay on each side of an in-memory stream: one toward a
// visitor's socket (the proxy's part), one toward a service's socket (the
// client's part). Every visitor that connects gets a socket of its own to
// the service.
type tunnel struct {
	url     string               // where visitors connect (ws://)
	service chan *websocket.Conn // the service's end of each socket
}

func newTunnel(t *testing.T) *tunnel { return newTunnelBuffered(t, 0) }

// newTunnelBuffered is newTunnel with the visitor's socket, on the
// proxy's side, sending through a buffer of sndbuf bytes if not 0.
func newTunnelBuffered(t *testing.T, sndbuf int) *tunnel {
	t.Helper()
	tun := &tunnel{service: make(chan *websocket.Conn, 4)}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		tun.service <- ws
	}))
	t.Cleanup(svc.Close)
	ctx, cancel := context.WithCancel(context.Background())
	// Both relays' sockets are Conns, as the proxy's and the client's
	// are, so that messages are written inline.
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return NewConn(c, true), nil
	}}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		visitor, err := (&websocket.Upgrader{}).Upgrade(hijackConn{w, sndbuf}, r, nil)
		if err != nil {
			return
		}
		toService, _, err := dialer.Dial(wsURL(svc.URL), nil)
		if err != nil {
			visitor.Close()
			return
		}
		a, b := memPair()
		done := make(chan struct{})
		go func() {
			defer close(done)
			Relay(ctx, toService, b, Options{})
		}()
		Relay(ctx, visitor, a, Options{})
		<-done
	}))
	t.Cleanup(func() { cancel(); proxy.Close() })
	tun.url = wsURL(proxy.URL)
	return tun
}

// hijackConn hands the upgrader its connection as a Conn.
type hijackConn struct {
	http.ResponseWriter
	sndbuf int
}

func (h hijackConn) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if h.sndbuf > 0 {
		c.(*net.TCPConn).SetWriteBuffer(h.sndbuf)
	}
	return NewConn(c, false), rw, nil
}

func wsURL(u string) string { return strings.Replace(u, "http", "ws", 1) }

// dial connects a gorilla visitor and returns it with the service's end.
func (tun *tunnel) dial(t *testing.T) (visitor, service *websocket.Conn) {
	t.Helper()
	return tun.dialWith(t, websocket.DefaultDialer)
}

func (tun *tunnel) dialWith(t *testing.T, d *websocket.Dialer) (visitor, service *websocket.Conn) {
	t.Helper()
	visitor, _, err := d.Dial(tun.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { visitor.Close() })
	return visitor, tun.serviceEnd(t)
}

func (tun *tunnel) serviceEnd(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case ws := <-tun.service:
		t.Cleanup(func() { ws.Close() })
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		return ws
	case <-time.After(5 * time.Second):
		t.Fatal("no socket reached the service")
		return nil
	}
}

// rawConn is a visitor that writes WebSocket frames by hand, so it can
// send what a library would refuse to.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

// dialRaw connects a hand-written visitor and returns it with the
// service's end of its socket.
func (tun *tunnel) dialRaw(t *testing.T) (*rawConn, *websocket.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(tun.url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: visitor\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return &rawConn{c: c, br: br}, tun.serviceEnd(t)
}

// write sends one masked frame.
func (r *rawConn) write(t *testing.T, fin bool, op byte, payload []byte) {
	t.Helper()
	b0 := op
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0, 0}
	switch n := len(payload); {
	case n < 126:
		h[1] = 0x80 | byte(n)
	case n <= 0xffff:
		h[1] = 0x80 | 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] = 0x80 | 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	h = append(h, key[:]...)
	masked := make([]byte, len(payload))
	for i, c := range payload {
		masked[i] = c ^ key[i%4]
	}
	if _, err := r.c.Write(append(h, masked...)); err != nil {
		t.Fatal(err)
	}
}

// read returns the next frame from the relay.
func (r *rawConn) read() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(r.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(r.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.br, payload)
	return h[0] & 0x0f, payload, err
}

// closeCode reads frames until a close frame and returns its code (1005
// for none), or -1 if the connection ended without one.
func (r *rawConn) closeCode() int {
	for {
		op, p, err := r.read()
		if err != nil {
			return -1
		}
		if op == websocket.CloseMessage {
			if len(p) < 2 {
				return websocket.CloseNoStatusReceived
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// closeOf returns the close code a gorilla end received, or -1 if it
// received a message or no close.
func closeOf(ws *websocket.Conn) (int, string) {
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); ok {
		return ce.Code, ce.Text
	}
	if err == nil {
		return -1, fmt.Sprintf("a message was delivered: %q", msg)
	}
	return -1, err.Error()
}
