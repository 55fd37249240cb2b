package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/messages"
)

// frameOf returns an encoded frame of exactly n bytes.
func frameOf(t messages.Type, n int) []byte {
	b := messages.AppendHeader(nil, t, 0, messages.ID{1})
	return append(b, bytes.Repeat([]byte{0xa5}, n-len(b))...)
}

// TestFrameOfMaxFrameBytes: a frame of exactly MaxFrame bytes, of a known
// type and of one this version does not know, reaches the handler on
// either end of a link; one byte more ends the link with ErrTooLarge.
func TestFrameOfMaxFrameBytes(t *testing.T) {
	for _, client := range []bool{false, true} {
		name := map[bool]string{false: "proxy end", true: "client end"}[client]
		t.Run(name, func(t *testing.T) {
			mine, peer := ends(t, client)
			c := newLink(mine, Options{Client: client})
			got := make(chan int, 4)
			ended := run(context.Background(), c, func(f messages.Frame, b *Buffer) error {
				got <- len(b.B)
				b.Free()
				return nil
			})
			for _, typ := range []messages.Type{messages.TypeHTTPResponse, 200} {
				if err := peer.WriteMessage(websocket.BinaryMessage, frameOf(typ, messages.MaxFrame)); err != nil {
					t.Fatal(err)
				}
				select {
				case n := <-got:
					if n != messages.MaxFrame {
						t.Errorf("type %v: got a frame of %d bytes, want %d", typ, n, messages.MaxFrame)
					}
				case err := <-ended:
					t.Fatalf("type %v: a frame of MaxFrame bytes ended the link: %v", typ, err)
				case <-time.After(5 * time.Second):
					t.Fatalf("type %v: the frame of MaxFrame bytes never arrived", typ)
				}
			}
			peer.WriteMessage(websocket.BinaryMessage, frameOf(messages.TypeHTTPResponse, messages.MaxFrame+1))
			select {
			case err := <-ended:
				if !errors.Is(err, messages.ErrTooLarge) {
					t.Errorf("a frame of MaxFrame+1 bytes: got %v, want %v", err, messages.ErrTooLarge)
				}
			case n := <-got:
				t.Errorf("a frame of MaxFrame+1 bytes reached the handler (%d bytes)", n)
			case <-time.After(5 * time.Second):
				t.Error("a frame of MaxFrame+1 bytes did not end the link")
			}
		})
	}
}

// TestFrameOfAnotherVersion: either end of a link answers a frame of
// another protocol version with an Error on the link, status 505, naming
// the version, then ends the link with ErrVersion.
func TestFrameOfAnotherVersion(t *testing.T) {
	for _, client := range []bool{false, true} {
		name := map[bool]string{false: "proxy end", true: "client end"}[client]
		t.Run(name, func(t *testing.T) {
			mine, peer := ends(t, client)
			c := newLink(mine, Options{Client: client})
			ended := run(context.Background(), c, discard)
			frame := frameOf(messages.TypePing, messages.HeaderSize)
			frame[0] = 2
			peer.WriteMessage(websocket.BinaryMessage, frame)
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, data, err := peer.ReadMessage()
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			f, err := messages.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := messages.ParseStatus(f.Payload)
			if f.Type != messages.TypeError || !f.ID.IsZero() || st.Code != 505 || !strings.Contains(st.Text, "version 2") {
				t.Errorf("got %v on %v, %d %q; want Error on the link, 505, naming version 2", f.Type, f.ID, st.Code, st.Text)
			}
			if err := <-ended; !errors.Is(err, messages.ErrVersion) {
				t.Errorf("link ended with %v, want %v", err, messages.ErrVersion)
			}
			if _, _, err := peer.ReadMessage(); err == nil {
				t.Error("the link is still open")
			}
		})
	}
}

// TestCloseWith: a link closed with a reason sends it as an Error on
// stream 0 before anything still queued, then ends with the given error.
func TestCloseWith(t *testing.T) {
	srv, cli := ends(t, false)
	c := newLink(srv, Options{})
	ended := run(context.Background(), c, discard)
	errGone := errors.New("key blocked")
	c.CloseWith(messages.Status{Code: 403, Text: "this key is blocked"}, errGone)
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := cli.ReadMessage()
	if err != nil {
		t.Fatalf("read the reason: %v", err)
	}
	f, err := messages.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := messages.ParseStatus(f.Payload)
	if f.Type != messages.TypeError || !f.ID.IsZero() || st.Code != 403 || st.Text != "this key is blocked" {
		t.Errorf("got %v on %v, %d %q; want Error on the link, 403, the reason", f.Type, f.ID, st.Code, st.Text)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, errGone) {
			t.Errorf("link ended with %v, want %v", err, errGone)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the link did not end")
	}
	c.CloseWith(messages.Status{Code: 403, Text: "again"}, errGone) // after the end: nothing
}

// TestShortMessages: a message shorter than a frame header, empty among
// them, ends the link with ErrMalformed on either end, and nothing
// reaches the handler.
func TestShortMessages(t *testing.T) {
	for _, client := range []bool{false, true} {
		for _, size := range []int{0, 1, messages.HeaderSize - 1} {
			name := fmt.Sprintf("%s, %d bytes", map[bool]string{false: "proxy end", true: "client end"}[client], size)
			t.Run(name, func(t *testing.T) {
				mine, peer := ends(t, client)
				c := newLink(mine, Options{Client: client})
				ended := run(context.Background(), c, func(f messages.Frame, b *Buffer) error {
					b.Free()
					return errors.New("a short message reached the handler")
				})
				msg := make([]byte, size)
				if size > 0 {
					msg[0] = messages.Version
				}
				if err := peer.WriteMessage(websocket.BinaryMessage, msg); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-ended:
					if !errors.Is(err, messages.ErrMalformed) {
						t.Errorf("got %v, want %v", err, messages.ErrMalformed)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("a short message did not end the link")
				}
			})
		}
	}
}
