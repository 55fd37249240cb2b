package link

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/leaktest"
	"keyhole/internal/link/linktest"
	"keyhole/messages"
)

// ends returns the two ends of a real WebSocket over loopback: the one a
// Conn wraps (the dialing end if client) and its peer.
func ends(t *testing.T, client bool) (mine, peer *websocket.Conn) {
	t.Helper()
	srv, cli := linktest.Pair(t)
	if client {
		return cli, srv
	}
	return srv, cli
}

// newLink is New with, on the end that did not dial, the reader a
// linktest.Pair's server end reads from (Options.Reader), as the proxy
// gives it: the link reads its frames itself there.
func newLink(ws *websocket.Conn, opts Options) *Conn {
	if !opts.Client && opts.Reader == nil {
		opts.Reader = linktest.Reader(ws)
	}
	return New(ws, opts)
}

// run starts c.Run with handle and returns what it returns.
func run(ctx context.Context, c *Conn, handle Handler) <-chan error {
	ended := make(chan error, 1)
	go func() { ended <- c.Run(ctx, handle) }()
	return ended
}

func discard(_ messages.Frame, b *Buffer) error { b.Free(); return nil }

// readFrom reads the next link frame the peer receives, within 5 s.
func readFrom(t *testing.T, peer *websocket.Conn) messages.Frame {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	kind, data, err := peer.ReadMessage()
	if err != nil {
		t.Fatalf("peer read: %v", err)
	}
	if kind != websocket.BinaryMessage {
		t.Fatalf("peer read a message of kind %d, want binary", kind)
	}
	f, err := messages.Parse(data)
	if err != nil {
		t.Fatalf("peer read: %v", err)
	}
	return f
}

// writeTo sends a link frame from the peer.
func writeTo(t *testing.T, peer *websocket.Conn, typ messages.Type, flags messages.Flags, id messages.ID, payload []byte) {
	t.Helper()
	b := messages.AppendHeader(nil, typ, flags, id)
	if err := peer.WriteMessage(websocket.BinaryMessage, append(b, payload...)); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

func idOf(i int) messages.ID { return messages.ID{byte(i), byte(i >> 8), 0xee} }

// numbered returns frame i of a sequence: small ones in buffers of their
// own, every third a whole pooled chunk.
func numbered(i int) *Buffer {
	if i%3 == 2 {
		b := Chunk()
		b.Seal(messages.TypeData, 0, idOf(i), messages.MaxChunk)
		return b
	}
	return Frame(messages.TypeData, 0, idOf(i), []byte{byte(i)})
}

// TestConnSendOrder: frames reach the peer in the order they were
// queued, whether sent one by one or in batches, from either end.
func TestConnSendOrder(t *testing.T) {
	const n = 100
	for _, tc := range []struct {
		name   string
		client bool
		batch  int // frames per SendBatch; 0 sends them one by one
	}{
		{"proxy end, one by one", false, 0},
		{"proxy end, batches of 7", false, 7},
		{"client end, one by one", true, 0},
		{"client end, batches of 40", true, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine, peer := ends(t, tc.client)
			c := newLink(mine, Options{Client: tc.client, Queue: 16})
			ctx, cancel := context.WithCancel(context.Background())
			ended := run(ctx, c, discard)
			sent := make(chan error, 1)
			go func() {
				for i := 0; i < n; {
					if tc.batch == 0 {
						if err := c.Send(ctx, numbered(i)); err != nil {
							sent <- err
							return
						}
						i++
						continue
					}
					var bs []*Buffer
					for ; len(bs) < tc.batch && i < n; i++ {
						bs = append(bs, numbered(i))
					}
					if err := c.SendBatch(ctx, bs...); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			for i := 0; i < n; i++ {
				f := readFrom(t, peer)
				if f.ID != idOf(i) {
					t.Fatalf("frame %d: got id %v, want %v", i, f.ID, idOf(i))
				}
				if want := map[bool]int{true: messages.MaxChunk, false: 1}[i%3 == 2]; len(f.Payload) != want {
					t.Fatalf("frame %d: got %d payload bytes, want %d", i, len(f.Payload), want)
				}
			}
			if err := <-sent; err != nil {
				t.Fatalf("send: %v", err)
			}
			cancel()
			<-ended
		})
	}
}

// TestConnQueueFull: with nobody writing, TrySend takes frames while the
// queue has room and refuses the next one; Send waits for room until its
// context ends; once the link is closed every send fails with the reason.
func TestConnQueueFull(t *testing.T) {
	mine, _ := ends(t, false)
	c := newLink(mine, Options{Queue: 3}) // not running: the queue only fills
	for i := 0; i < 3; i++ {
		if !c.TrySend(numbered(i)) {
			t.Fatalf("TrySend %d refused with room in the queue", i)
		}
	}
	if c.TrySend(numbered(3)) {
		t.Error("TrySend on a full queue got true, want false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), blocked)
	defer cancel()
	if err := c.Send(ctx, numbered(4)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send on a full queue: got %v, want %v", err, context.DeadlineExceeded)
	}
	if err := c.SendBatch(ctx, numbered(5), numbered(6)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SendBatch on a full queue: got %v, want %v", err, context.DeadlineExceeded)
	}
	reason := errors.New("tunnel replaced")
	c.Close(reason)
	if c.TrySend(numbered(7)) {
		t.Error("TrySend after Close got true, want false")
	}
	if err := c.Send(context.Background(), numbered(8)); !errors.Is(err, reason) {
		t.Errorf("Send after Close: got %v, want %v", err, reason)
	}
	if err := c.SendBatch(context.Background(), numbered(9), numbered(10)); !errors.Is(err, reason) {
		t.Errorf("SendBatch after Close: got %v, want %v", err, reason)
	}
	if err := <-run(context.Background(), c, discard); err != reason {
		t.Errorf("Run after Close: got %v, want %v", err, reason)
	}
	if n := c.queued(); n != 0 {
		t.Errorf("got %d frames still queued after Run, want 0", n)
	}
}

// TestConnEnds: Run returns why the link ended, Err says the same once
// Done is closed and nil before, sends fail with it, and no goroutine
// of the link is left.
func TestConnEnds(t *testing.T) {
	reason := errors.New("replaced by a new link")
	handlerErr := errors.New("frame out of place")
	for _, tc := range []struct {
		name   string
		opts   Options
		end    func(t *testing.T, c *Conn, peer *websocket.Conn, cancel context.CancelFunc)
		want   error  // errors.Is the reason
		wantIn string // or, when want is nil, in its text
	}{
		{"Close with a reason", Options{}, func(_ *testing.T, c *Conn, _ *websocket.Conn, _ context.CancelFunc) { c.Close(reason) }, reason, ""},
		{"Close(nil)", Options{}, func(_ *testing.T, c *Conn, _ *websocket.Conn, _ context.CancelFunc) { c.Close(nil) }, ErrClosed, ""},
		{"ctx canceled", Options{}, func(_ *testing.T, _ *Conn, _ *websocket.Conn, cancel context.CancelFunc) { cancel() }, context.Canceled, ""},
		{"handler error", Options{}, func(t *testing.T, _ *Conn, peer *websocket.Conn, _ context.CancelFunc) {
			writeTo(t, peer, messages.TypeData, 0, idOf(1), []byte("x"))
		}, handlerErr, ""},
		{"peer closes", Options{}, func(_ *testing.T, _ *Conn, peer *websocket.Conn, _ context.CancelFunc) { peer.Close() }, nil, "read: "},
		{"text message", Options{}, func(t *testing.T, _ *Conn, peer *websocket.Conn, _ context.CancelFunc) {
			peer.WriteMessage(websocket.TextMessage, []byte("hello"))
		}, messages.ErrMalformed, ""},
		{"malformed frame", Options{}, func(t *testing.T, _ *Conn, peer *websocket.Conn, _ context.CancelFunc) {
			peer.WriteMessage(websocket.BinaryMessage, []byte{messages.Version, 1, 2})
		}, messages.ErrMalformed, ""},
		{"silence", Options{Timeout: 300 * time.Millisecond}, func(*testing.T, *Conn, *websocket.Conn, context.CancelFunc) {}, nil, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine, peer := ends(t, false)
			before := runtime.NumGoroutine()
			c := newLink(mine, tc.opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ended := run(ctx, c, func(f messages.Frame, b *Buffer) error {
				b.Free()
				if f.Type == messages.TypeData {
					return handlerErr
				}
				return nil
			})
			time.Sleep(20 * time.Millisecond) // let Run start
			if err := c.Err(); err != nil {
				t.Fatalf("Err while running: got %v, want nil", err)
			}
			tc.end(t, c, peer, cancel)
			var err error
			select {
			case err = <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Run: got %v, want %v", err, tc.want)
			}
			if tc.want == nil && (err == nil || !strings.Contains(err.Error(), tc.wantIn)) {
				t.Errorf("Run: got %v, want an error with %q", err, tc.wantIn)
			}
			<-c.Done()
			if got := c.Err(); got != err {
				t.Errorf("Err: got %v, want %v", got, err)
			}
			if serr := c.Send(context.Background(), numbered(0)); !errors.Is(serr, err) {
				t.Errorf("Send after the end: got %v, want %v", serr, err)
			}
			leaktest.Check(t, before)
		})
	}
}

// TestConnSilenceDrops: a link that hears nothing for Timeout drops with
// a timeout, whatever it sends itself; any frame heard keeps it up.
func TestConnSilenceDrops(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for _, tc := range []struct {
		name     string
		peerPing time.Duration // the peer sends a Ping this often; 0 for never
		wantDrop bool
	}{
		{"silent peer", 0, true},
		{"peer talks", timeout / 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine, peer := ends(t, false)
			c := newLink(mine, Options{Timeout: timeout, PingInterval: timeout / 4})
			start := time.Now()
			ended := run(context.Background(), c, discard)
			defer c.Close(nil)
			stop := make(chan struct{})
			defer close(stop)
			go func() { // the peer reads (and drops) our Pings
				for {
					if _, _, err := peer.ReadMessage(); err != nil {
						return
					}
				}
			}()
			if tc.peerPing > 0 {
				go func() {
					tick := time.NewTicker(tc.peerPing)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							b := messages.AppendHeader(nil, messages.TypePing, messages.FlagPong, messages.ID{})
							if peer.WriteMessage(websocket.BinaryMessage, b) != nil {
								return
							}
						}
					}
				}()
			}
			select {
			case err := <-ended:
				var ne net.Error
				if !tc.wantDrop {
					t.Fatalf("a link that hears its peer dropped after %v: %v", time.Since(start), err)
				}
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("got %v, want a timeout", err)
				}
				if d := time.Since(start); d < timeout {
					t.Errorf("dropped after %v, want at least %v", d, timeout)
				}
			case <-time.After(3 * timeout):
				if tc.wantDrop {
					t.Fatalf("a silent link still up after %v", 3*timeout)
				}
			}
		})
	}
}

// TestConnKeepalive: a link that has sent nothing for PingInterval sends
// a Ping (id 0, no Pong flag); a Ping from the peer is answered with its
// payload and FlagPong and never reaches the handler; a Pong is not
// answered.
func TestConnKeepalive(t *testing.T) {
	for _, client := range []bool{false, true} {
		t.Run(map[bool]string{false: "proxy end", true: "client end"}[client], func(t *testing.T) {
			mine, peer := ends(t, client)
			const interval = 100 * time.Millisecond
			c := newLink(mine, Options{Client: client, PingInterval: interval})
			handled := make(chan messages.Type, 8)
			start := time.Now()
			ended := run(context.Background(), c, func(f messages.Frame, b *Buffer) error {
				handled <- f.Type
				b.Free()
				return nil
			})
			defer func() { c.Close(nil); <-ended }()
			f := readFrom(t, peer)
			if f.Type != messages.TypePing || f.Flags&messages.FlagPong != 0 || !f.ID.IsZero() {
				t.Fatalf("got %v flags %v on %v, want a Ping on the link", f.Type, f.Flags, f.ID)
			}
			if d := time.Since(start); d < interval {
				t.Errorf("first Ping after %v, want at least %v", d, interval)
			}
			for _, tc := range []struct {
				name    string
				flags   messages.Flags
				payload string
			}{
				{"a Pong is not answered", messages.FlagPong, "pong"},
				{"a Ping is answered", 0, "ping with 64 bytes: " + strings.Repeat("x", 44)},
				{"an empty Ping is answered", 0, ""},
			} {
				writeTo(t, peer, messages.TypePing, tc.flags, idOf(9), []byte(tc.payload))
				if tc.flags&messages.FlagPong != 0 {
					continue // the next answer must be the next Ping's
				}
				for {
					f = readFrom(t, peer)
					if f.Flags&messages.FlagPong != 0 {
						break
					}
				}
				if f.Type != messages.TypePing || f.ID != idOf(9) || string(f.Payload) != tc.payload {
					t.Errorf("%s: got %v on %v with %q, want a Pong on %v with %q", tc.name, f.Type, f.ID, f.Payload, idOf(9), tc.payload)
				}
			}
			select {
			case typ := <-handled:
				t.Errorf("the handler got a %v, want Pings kept from it", typ)
			default:
			}
		})
	}
}

// TestConnTrySendAfterClose: once the link has ended TrySend refuses
// every frame, as Send does, even while the queue has room: a frame
// queued then would never be written nor freed, and its caller would
// count it as sent.
func TestConnTrySendAfterClose(t *testing.T) {
	const tries = 200
	mine, _ := ends(t, false)
	c := newLink(mine, Options{Queue: tries})
	c.Close(nil)
	taken := 0
	for i := 0; i < tries; i++ {
		if c.TrySend(numbered(i)) {
			taken++
		}
	}
	if taken > 0 {
		t.Errorf("TrySend after Close took %d of %d frames, want none", taken, tries)
	}
	c.drain()
}
