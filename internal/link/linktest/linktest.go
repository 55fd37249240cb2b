// Package linktest gives tests of the link and of its users the two ends
// of a real WebSocket over loopback.
package linktest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"keyhole/internal/sock"
)

// Pair returns the two ends of a real WebSocket over loopback, the
// server's end first; both close when the test ends. Their sockets are
// package sock's, as the proxy's and the client's are.
func Pair(t testing.TB) (srv, cli *websocket.Conn) {
	t.Helper()
	got := make(chan *websocket.Conn, 1)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
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
	t.Cleanup(func() { srv.Close(); cli.Close() })
	return srv, cli
}
