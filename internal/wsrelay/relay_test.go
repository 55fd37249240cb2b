package wsrelay

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Text that is not UTF-8, from either socket, whole or in fragments, is
// never delivered: the socket that sent it is failed with 1007, and so is
// the socket on the far side.
func TestRelayRefusesTextThatIsNotUTF8(t *testing.T) {
	tun := newTunnel(t)
	surrogate := []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")
	cases := []struct {
		name  string
		frags [][]byte
	}{
		{"one frame", [][]byte{surrogate}},
		{"invalid in the second fragment", [][]byte{[]byte("κόσμε"), surrogate[10:]}},
		{"a byte never valid", [][]byte{[]byte("ok"), []byte("\xff")}},
		{"ends inside a character", [][]byte{[]byte("abc\xe2"), []byte("\x82")}},
		{"overlong", [][]byte{[]byte("\xc0\xaf")}},
	}
	for _, tc := range cases {
		t.Run("from the visitor, "+tc.name, func(t *testing.T) {
			raw, service := tun.dialRaw(t)
			for i, f := range tc.frags {
				op := byte(websocket.TextMessage)
				if i > 0 {
					op = 0 // continuation
				}
				raw.write(t, i == len(tc.frags)-1, op, f)
			}
			if got := raw.closeCode(); got != CodeInvalidText {
				t.Errorf("visitor: got close %d, want %d", got, CodeInvalidText)
			}
			if got, text := closeOf(service); got != CodeInvalidText {
				t.Errorf("service: got close %d (%s), want %d", got, text, CodeInvalidText)
			}
		})
	}
	t.Run("from the service", func(t *testing.T) {
		visitor, service := tun.dial(t)
		service.WriteMessage(websocket.TextMessage, surrogate) // gorilla sends it unchecked
		if got, text := closeOf(service); got != CodeInvalidText {
			t.Errorf("service: got close %d (%s), want %d", got, text, CodeInvalidText)
		}
		if got, text := closeOf(visitor); got != CodeInvalidText {
			t.Errorf("visitor: got close %d (%s), want %d", got, text, CodeInvalidText)
		}
	})
}

// Valid text split anywhere across fragments, a character cut in two
// included, arrives whole; a ping between the fragments is answered on
// the visitor's hop and the message arrives intact. Binary messages are
// never checked for UTF-8.
func TestRelayFragmentsAndControlFrames(t *testing.T) {
	tun := newTunnel(t)
	raw, service := tun.dialRaw(t)
	msg := []byte("κόσμε \U0001f600 ok")
	raw.write(t, false, websocket.TextMessage, msg[:1]) // inside κ
	raw.write(t, false, 0, msg[1:9])
	raw.write(t, true, websocket.PingMessage, []byte("between"))
	raw.write(t, false, 0, msg[9:13]) // inside the emoji
	raw.write(t, true, 0, msg[13:])
	op, p, err := raw.read()
	if err != nil || op != websocket.PongMessage || string(p) != "between" {
		t.Fatalf("ping between fragments: got op %d %q %v, want a pong", op, p, err)
	}
	typ, got, err := service.ReadMessage()
	if err != nil || typ != websocket.TextMessage || !bytes.Equal(got, msg) {
		t.Fatalf("service: got %d %q %v, want text %q", typ, got, err, msg)
	}
	bin := []byte{0xff, 0xed, 0xa0, 0x80, 0xc0}
	raw.write(t, true, websocket.BinaryMessage, bin)
	if typ, got, err := service.ReadMessage(); err != nil || typ != websocket.BinaryMessage || !bytes.Equal(got, bin) {
		t.Fatalf("binary: got %d %x %v, want %x", typ, got, err, bin)
	}
}

// A close code a peer may send passes through (1014, which the WebSocket
// library refuses on receipt, excepted) to the far socket with its
// reason, and the far side's answer comes back; a code no peer may send
// (RFC 6455 section 7.4) fails the socket with 1002, and the far socket
// is closed with 1002 too.
func TestRelayCloseCodes(t *testing.T) {
	tun := newTunnel(t)
	closeFrame := func(code int, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
	}
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4999} {
		raw, service := tun.dialRaw(t)
		raw.write(t, true, websocket.CloseMessage, closeFrame(code, "bye ✓"))
		if got, text := closeOf(service); got != code || text != "bye ✓" {
			t.Errorf("code %d: service got %d %q, want %d %q", code, got, text, code, "bye ✓")
		}
		if got := raw.closeCode(); got != code {
			t.Errorf("code %d: visitor got the answer %d, want %d", code, got, code)
		}
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		raw, service := tun.dialRaw(t)
		raw.write(t, true, websocket.CloseMessage, closeFrame(code, ""))
		if got := raw.closeCode(); got != CodeProtocol {
			t.Errorf("code %d: visitor got %d, want %d", code, got, CodeProtocol)
		}
		if got, text := closeOf(service); got != CodeProtocol {
			t.Errorf("code %d: service got %d (%s), want %d", code, got, text, CodeProtocol)
		}
	}
	t.Run("no code", func(t *testing.T) {
		raw, service := tun.dialRaw(t)
		raw.write(t, true, websocket.CloseMessage, nil)
		if got, _ := closeOf(service); got != websocket.CloseNoStatusReceived {
			t.Errorf("service got %d, want %d (a close with no status)", got, websocket.CloseNoStatusReceived)
		}
	})
	t.Run("reason not UTF-8", func(t *testing.T) {
		raw, service := tun.dialRaw(t)
		raw.write(t, true, websocket.CloseMessage, closeFrame(1000, "\xed\xa0\x80"))
		if got := raw.closeCode(); got != CodeProtocol && got != CodeInvalidText {
			t.Errorf("visitor got %d, want %d or %d", got, CodeProtocol, CodeInvalidText)
		}
		if got, text := closeOf(service); got != CodeInvalidText {
			t.Errorf("service got %d (%s), want %d", got, text, CodeInvalidText)
		}
	})
}

// Control frames over 125 bytes, or fragmented, and unknown opcodes fail
// the socket with 1002, and the far socket is closed with 1002.
func TestRelayBadControlFrames(t *testing.T) {
	tun := newTunnel(t)
	cases := []struct {
		name    string
		fin     bool
		op      byte
		payload []byte
	}{
		{"ping of 126 bytes", true, websocket.PingMessage, bytes.Repeat([]byte("p"), 126)},
		{"pong of 126 bytes", true, websocket.PongMessage, bytes.Repeat([]byte("p"), 126)},
		{"close of 126 bytes", true, websocket.CloseMessage, append([]byte{0x03, 0xe8}, strings.Repeat("c", 124)...)},
		{"fragmented ping", false, websocket.PingMessage, []byte("p")},
		{"reserved opcode 3", true, 3, nil},
		{"reserved opcode 11", true, 11, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, service := tun.dialRaw(t)
			raw.write(t, tc.fin, tc.op, tc.payload)
			if got := raw.closeCode(); got != CodeProtocol {
				t.Errorf("visitor got %d, want %d", got, CodeProtocol)
			}
			if got, text := closeOf(service); got != CodeProtocol {
				t.Errorf("service got %d (%s), want %d", got, text, CodeProtocol)
			}
		})
	}
	t.Run("ping of 125 bytes", func(t *testing.T) {
		raw, _ := tun.dialRaw(t)
		p := bytes.Repeat([]byte("p"), 125)
		raw.write(t, true, websocket.PingMessage, p)
		raw.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if op, got, err := raw.read(); err != nil || op != websocket.PongMessage || !bytes.Equal(got, p) {
			t.Errorf("got op %d, %d bytes, %v; want a pong of 125 bytes", op, len(got), err)
		}
	})
}

// TestRelaySlowVisitor: a service sends messages of many sizes, whole and
// in fragments, faster than the visitor reads, whose socket then fills,
// while the visitor pings: every message reaches the visitor whole, in
// order, and every ping is answered. Written straight from the stream's
// side while the socket takes them, then by the relay once it is full,
// the messages and the pongs share the socket without mixing.
func TestRelaySlowVisitor(t *testing.T) {
	tun := newTunnelBuffered(t, 16<<10)
	small := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}}
	visitor, service := tun.dialWith(t, small)
	const n = 1500
	msg := func(i int) (int, []byte) {
		size := []int{1, 100, 1000, 3000, 9000, 12000}[i%6] + i%1000
		if i%100 == 99 {
			size = 70000 // in pieces
		}
		typ := websocket.BinaryMessage
		if i%4 == 0 {
			typ = websocket.TextMessage
		}
		return typ, bytes.Repeat([]byte{'a' + byte(i%26)}, size)
	}
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			typ, p := msg(i)
			service.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := service.WriteMessage(typ, p); err != nil {
				sent <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			if i < 60 {
				// One at a time at first, so each finds the relay
				// waiting and goes inline until the socket is full.
				time.Sleep(2 * time.Millisecond)
			}
		}
		sent <- nil
	}()
	var pongs atomic.Int64
	visitor.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	time.Sleep(500 * time.Millisecond) // the visitor's socket fills
	var pings int64
	for i := 0; i < n; i++ {
		if i%50 == 0 {
			if err := visitor.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(5*time.Second)); err != nil {
				t.Fatal(err)
			}
			pings++
		}
		visitor.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, got, err := visitor.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		wantTyp, want := msg(i)
		if typ != wantTyp || !bytes.Equal(got, want) {
			t.Fatalf("message %d: got type %d, %d bytes; want type %d, %d bytes", i, typ, len(got), wantTyp, len(want))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// A pong may come after the last message: read on while the
	// service sends more.
	for end := time.Now().Add(5 * time.Second); pongs.Load() < pings && time.Now().Before(end); {
		service.WriteMessage(websocket.TextMessage, []byte("more"))
		visitor.ReadMessage()
	}
	if got := pongs.Load(); got != pings {
		t.Errorf("got %d pongs for %d pings", got, pings)
	}
}
