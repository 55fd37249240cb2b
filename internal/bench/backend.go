package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// backend is the private service: fixed bodies served from memory, a
// WebSocket echo on echoPath, and a count of the TCP connections it
// accepted, to see whether the client reuses its connections.
type backend struct {
	url   string
	srv   *http.Server
	conns atomic.Int64 // connections accepted

	mu      sync.Mutex // protects sockets
	sockets map[*websocket.Conn]struct{}
}

// bodies the backend serves, by path.
var bodies = map[string][]byte{
	"/1k":   payload(1 << 10),
	"/400k": payload(400 << 10),
}

// echoPath is where the backend echoes every WebSocket message back.
const echoPath = "/ws"

// payload is n bytes of a repeating, not all-zero pattern.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func startBackend() (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{url: "http://" + ln.Addr().String(), sockets: make(map[*websocket.Conn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc(echoPath, b.serveEcho)
	mux.HandleFunc("/", serveBody)
	b.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		},
	}
	go b.srv.Serve(ln)
	return b, nil
}

func serveBody(w http.ResponseWriter, r *http.Request) {
	body, ok := bodies[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.Write(body)
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true },
}

// serveEcho sends every message back on the same socket, with its type,
// until the socket fails or closes.
func (b *backend) serveEcho(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil) // answers the failures itself
	if err != nil {
		return
	}
	defer c.Close()
	b.mu.Lock()
	b.sockets[c] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.sockets, c)
		b.mu.Unlock()
	}()
	for {
		typ, rd, err := c.NextReader()
		if err != nil {
			return
		}
		wr, err := c.NextWriter(typ)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}

// close stops the backend and closes its connections, WebSockets too.
func (b *backend) close() {
	b.srv.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.sockets {
		c.Close()
	}
}
