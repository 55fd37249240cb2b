package proxy

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/gorilla/websocket"

	"keyhole/internal/link"
)

// TestLinkReadsInBursts: a link's WebSocket reads its socket through the
// burst reader, so frames that arrived together are taken in one read:
// once a read has filled the reader's own buffer (the first message and
// more), the rest of what was sent at once waits in the burst, not in the
// socket.
func TestLinkReadsInBursts(t *testing.T) {
	type result struct {
		burst, ahead int
		err          error
	}
	got := make(chan result, 1)
	up := websocket.Upgrader{WriteBufferSize: 512}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tap := &hijackTap{ResponseWriter: w}
		ws, err := up.Upgrade(tap, r, nil)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer ws.Close()
		tap.readInBursts()
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range 2 {
			if _, _, err = ws.ReadMessage(); err != nil {
				break
			}
		}
		if tap.burst == nil {
			got <- result{err: err}
			return
		}
		got <- result{burst: tap.burst.Buffered(), ahead: tap.readAhead()(), err: err}
	}))
	defer srv.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Eight 1 KiB messages in one write, so they arrive together.
	var batch []byte
	for range 8 {
		batch = append(batch, wsFrame(1000)...)
	}
	if _, err := c.NetConn().Write(batch); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if runtime.GOOS != "linux" {
		t.Skip("no burst reads on this OS")
	}
	if r.burst < 4<<10 {
		t.Fatalf("after two messages: %d bytes in the burst, want most of the other six's (over 4 KiB)", r.burst)
	}
	if r.ahead < r.burst {
		t.Fatalf("readAhead %d, want at least the burst's %d", r.ahead, r.burst)
	}
}

// wsFrame is a masked binary WebSocket message of n zero bytes, as a
// client sends it (the zero mask key leaves the payload as it is).
func wsFrame(n int) []byte {
	return append([]byte{0x82, 0x80 | 126, byte(n >> 8), byte(n), 0, 0, 0, 0}, make([]byte, n)...)
}

// TestReadAheadKeepsNoResponseWriter: the ReadAhead a link keeps for its
// whole life holds the readers, not the tap, whose ResponseWriter (with
// the request and net/http's buffers) would otherwise stay alive with
// every idle link.
func TestReadAheadKeepsNoResponseWriter(t *testing.T) {
	rw := &struct {
		httptest.ResponseRecorder
		pad [64 << 10]byte
	}{}
	a, _ := net.Pipe()
	defer a.Close()
	tap := &hijackTap{ResponseWriter: rw, br: bufio.NewReaderSize(a, linkReadBuffer), burst: link.NewBurstReader(a)}
	ahead := tap.readAhead()
	gone := weak.Make(rw)
	tap, rw = nil, nil
	runtime.GC()
	if ahead() != 0 {
		t.Fatal("nothing read, yet something buffered")
	}
	if gone.Value() != nil {
		t.Fatal("the link's ReadAhead keeps the handler's ResponseWriter alive")
	}
	runtime.KeepAlive(tap)
}
