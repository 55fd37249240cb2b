// Package linktest gives tests of the link and of its users the two ends
// of a real WebSocket over loopback.
package linktest

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"keyhole/internal/sock"
)

// Pair returns the two ends of a real WebSocket over loopback, the
// server's end first; both close when the test ends. Their sockets are
// package sock's, as the proxy's and the client's are, and the server's
// end reads from the reader Reader returns, as the proxy's does.
func Pair(t testing.TB) (srv, cli *websocket.Conn) {
	t.Helper()
	got := make(chan *websocket.Conn, 1)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tap := &tap{ResponseWriter: w}
		ws, err := (&websocket.Upgrader{}).Upgrade(tap, r, nil)
		if err != nil {
			return
		}
		readers.Store(ws, tap.br)
		got <- ws
	}))
	hs.Listener = sock.Listener(hs.Listener)
	hs.Start()
	t.Cleanup(hs.Close)
	d := websocket.Dialer{NetDialContext: sock.Dialer((&net.Dialer{}).DialContext)}
	cli, _, err := d.Dial(strings.Replace(hs.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv = <-got
	t.Cleanup(func() { srv.Close(); cli.Close(); readers.Delete(srv) })
	return srv, cli
}

// Reader returns the buffered reader the server's end of a Pair reads
// from (net/http's, which the WebSocket library reuses), for
// link.Options Reader; nil for any other WebSocket.
func Reader(srv *websocket.Conn) *bufio.Reader {
	br, _ := readers.Load(srv)
	r, _ := br.(*bufio.Reader)
	return r
}

var readers sync.Map // *websocket.Conn → *bufio.Reader

// tap keeps the reader of the connection it hijacks.
type tap struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (t *tap) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(t.ResponseWriter).Hijack()
	if brw != nil {
		t.br = brw.Reader
	}
	return c, brw, err
}
