package link

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/messages"
)

// wsPair returns the two ends of a real WebSocket over loopback: the
// server's end first.
func wsPair(t *testing.T) (srv, cli *websocket.Conn) {
	t.Helper()
	got := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		got <- ws
	}))
	t.Cleanup(hs.Close)
	cli, _, err := websocket.DefaultDialer.Dial(strings.Replace(hs.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv = <-got
	t.Cleanup(func() { srv.Close(); cli.Close() })
	return srv, cli
}

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
			srv, cli := wsPair(t)
			mine, peer := srv, cli
			if client {
				mine, peer = cli, srv
			}
			c := New(mine, Options{Client: client})
			got := make(chan int, 4)
			ended := make(chan error, 1)
			go func() {
				ended <- c.Run(context.Background(), func(f messages.Frame, b *Buffer) error {
					got <- len(b.B)
					b.Free()
					return nil
				})
			}()
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
