package link

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/messages"
)

func TestMaskBytes(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 1000, 65536 + 5} {
		b := make([]byte, n)
		rand.Read(b)
		want := bytes.Clone(b)
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		for i := range want {
			want[i] ^= key[i%4]
		}
		maskBytes(b, 0x12345678)
		if !bytes.Equal(b, want) {
			t.Errorf("%d bytes: masked wrong", n)
		}
	}
}

// TestWireSpeaksWebSocket checks the link's own framing against the
// WebSocket library as the peer, both ways: a client link's masked
// messages to a server, and a server link's messages to a client, in
// batches and one at a time, sizes around every length encoding.
func TestWireSpeaksWebSocket(t *testing.T) {
	sizes := []int{0, 1, 105, 106, 125, 126, 65515, 65516, messages.MaxPayload}
	frames := func() []*Buffer {
		var bs []*Buffer
		for i, n := range sizes {
			b := NewBuffer()
			b.B = messages.AppendHeader(b.B, messages.TypeHTTPResponse, 0, messages.ID{byte(i)})
			b.B = append(b.B, bytes.Repeat([]byte{byte(i + 1)}, n)...)
			bs = append(bs, b)
		}
		small := &Buffer{B: messages.AppendHeader(nil, messages.TypePing, 0, messages.ID{})} // no headroom
		return append(bs, small)
	}
	// check reads the batch and then the single sends, and returns the
	// first difference.
	check := func(ws *websocket.Conn) error {
		for rep := 0; rep < 2; rep++ {
			for i := 0; i <= len(sizes); i++ {
				kind, data, err := ws.ReadMessage()
				if err != nil {
					return fmt.Errorf("message %d: %v", i, err)
				}
				f, err := messages.Parse(data)
				if kind != websocket.BinaryMessage || err != nil {
					return fmt.Errorf("message %d: kind %d, %v", i, kind, err)
				}
				if i < len(sizes) && (len(f.Payload) != sizes[i] || f.ID[0] != byte(i) || (sizes[i] > 0 && f.Payload[sizes[i]-1] != byte(i+1))) {
					return fmt.Errorf("message %d: got %d payload bytes, want %d intact", i, len(f.Payload), sizes[i])
				}
			}
		}
		return nil
	}
	// send runs c, sends both ways of framing, and ends c once its peer
	// has read everything (done closes).
	send := func(c *Conn, done <-chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			c.Run(ctx, func(_ messages.Frame, b *Buffer) error { b.Free(); return nil })
		}()
		c.SendBatch(ctx, frames()...)
		for _, b := range frames() {
			c.Send(ctx, b)
		}
		<-done
		cancel()
		<-ran
	}
	t.Run("client link to a server", func(t *testing.T) {
		got := make(chan error, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			ws.SetReadLimit(2 * messages.MaxFrame)
			got <- check(ws)
		}))
		defer srv.Close()
		ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		c := newLink(ws, Options{Client: true})
		checked := make(chan struct{})
		go func() {
			if err := <-got; err != nil {
				t.Error(err)
			}
			close(checked)
		}()
		send(c, checked)
	})
	t.Run("server link to a client", func(t *testing.T) {
		checked := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			send(newLink(ws, Options{}), checked)
		}))
		defer srv.Close()
		ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := check(ws); err != nil {
			t.Error(err)
		}
		close(checked)
	})
}

func BenchmarkMaskBytes(b *testing.B) {
	buf := make([]byte, messages.MaxChunk)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		maskBytes(buf, 0x12345678)
	}
}
