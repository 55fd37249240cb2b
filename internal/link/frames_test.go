package link

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/messages"
)

// proxyEnd returns a running link on the end that did not dial, reading
// its frames itself, the peer's end, and the link's frames and end.
func proxyEnd(t *testing.T) (peer *websocket.Conn, got <-chan []byte, ended <-chan error) {
	t.Helper()
	mine, peer := ends(t, false)
	c := newLink(mine, Options{})
	if c.frames == nil {
		t.Fatal("the link does not read its frames itself")
	}
	frames := make(chan []byte, 16)
	ended = run(context.Background(), c, func(f messages.Frame, b *Buffer) error {
		frames <- bytes.Clone(b.B)
		b.Free()
		return nil
	})
	return peer, frames, ended
}

// TestFramesAsTheLibraryWrites: messages the WebSocket library writes,
// whole or in fragments with a ping among them, reach the handler byte
// for byte, up to MaxFrame.
func TestFramesAsTheLibraryWrites(t *testing.T) {
	peer, got, ended := proxyEnd(t)
	sizes := []int{messages.HeaderSize, 125, 126, 1000, 4096, 4097, 65535, 65536, messages.MaxFrame}
	for i, size := range sizes {
		want := frameOf(messages.TypeHTTPResponse, size)
		for j := messages.HeaderSize; j < size; j++ {
			want[j] = byte(i*31 + j*7)
		}
		w, err := peer.NextWriter(websocket.BinaryMessage)
		if err != nil {
			t.Fatal(err)
		}
		// The library sends a frame each time its 4 KiB buffer fills: a
		// large message arrives in fragments, the ping between two.
		half := len(want) / 2
		w.Write(want[:half])
		if err := peer.WriteControl(websocket.PingMessage, []byte("between"), time.Now().Add(time.Second)); err != nil {
			select {
			case lerr := <-ended:
				t.Fatalf("ping: %v; the link ended: %v", err, lerr)
			default:
				t.Fatal(err)
			}
		}
		w.Write(want[half:])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if !bytes.Equal(b, want) {
				t.Fatalf("a message of %d bytes arrived as %d bytes, equal %v", size, len(b), bytes.Equal(b, want))
			}
		case err := <-ended:
			t.Fatalf("a message of %d bytes ended the link: %v", size, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("a message of %d bytes never arrived", size)
		}
	}
}

// TestFramesClose: a close frame ends the link with what it said.
func TestFramesClose(t *testing.T) {
	peer, _, ended := proxyEnd(t)
	peer.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"), time.Now().Add(time.Second))
	select {
	case err := <-ended:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "bye" {
			t.Fatalf("got %v, want close 1001 bye", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a close frame did not end the link")
	}
}

// rawFrame is a client's frame: masked with key unless unmasked is set.
func rawFrame(b0 byte, payload []byte, unmasked bool) []byte {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	f := []byte{b0}
	mask := byte(0x80)
	if unmasked {
		mask = 0
	}
	switch n := len(payload); {
	case n < 126:
		f = append(f, mask|byte(n))
	case n <= 0xffff:
		f = append(f, mask|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, mask|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if unmasked {
		return append(f, payload...)
	}
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i&3])
	}
	return f
}

// TestFramesRefused: frames a link does not take end it, with why.
func TestFramesRefused(t *testing.T) {
	frame := frameOf(messages.TypeHTTPResponse, 40)
	big := make([]byte, messages.MaxFrame/2+1) // two of them are over MaxFrame
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"unmasked", rawFrame(0x82, frame, true), messages.ErrMalformed},
		{"text", rawFrame(0x81, frame, false), messages.ErrMalformed},
		{"continuation first", rawFrame(0x80, frame, false), messages.ErrMalformed},
		{"reserved bits", rawFrame(0xc2, frame, false), messages.ErrMalformed},
		{"unknown opcode", rawFrame(0x83, frame, false), messages.ErrMalformed},
		{"fragmented ping", rawFrame(0x09, nil, false), messages.ErrMalformed},
		{"new message within one", append(rawFrame(0x02, frame, false), rawFrame(0x82, frame, false)...), messages.ErrMalformed},
		{"fragments over MaxFrame", append(rawFrame(0x02, big, false), rawFrame(0x80, big, false)...), messages.ErrTooLarge},
		{"a frame over MaxFrame", rawFrame(0x82, make([]byte, messages.MaxFrame+1), false), messages.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer, got, ended := proxyEnd(t)
			if _, err := peer.NetConn().Write(tc.raw); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-ended:
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			case b := <-got:
				t.Fatalf("a frame of %d bytes reached the handler", len(b))
			case <-time.After(5 * time.Second):
				t.Fatal("the link took it")
			}
		})
	}
}

// TestFramesCutOff: a connection that ends inside a frame is an abnormal
// closure, as the library reports it.
func TestFramesCutOff(t *testing.T) {
	peer, _, ended := proxyEnd(t)
	raw := rawFrame(0x82, frameOf(messages.TypeHTTPResponse, 1000), false)
	peer.NetConn().Write(raw[:500])
	peer.NetConn().Close()
	select {
	case err := <-ended:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("got %v, want close 1006", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the link did not end")
	}
}
