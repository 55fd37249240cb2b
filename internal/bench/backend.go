package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// backend is the private service, run in its own process (the benchmark
// started as "bench backend"): fixed bodies served from memory, a
// WebSocket echo on echoPath, large bodies to download and to upload, an
// event stream, and a count of the TCP connections it accepted, to see
// whether the client reuses its connections. It counts on a second
// listener, so that asking does not add to the count.
type backend struct {
	srv   *http.Server
	stats *http.Server
	conns atomic.Int64 // connections accepted by srv

	mu      sync.Mutex // protects sockets
	sockets map[*websocket.Conn]struct{}
}

// bodies the backend serves, by path.
var bodies = map[string][]byte{
	"/1k":   payload(1 << 10),
	"/400k": payload(400 << 10),
}

const (
	echoPath  = "/ws"    // echoes every WebSocket message back
	blobPath  = "/blob"  // ?n=bytes: n bytes of the pattern
	sinkPath  = "/sink"  // reads the request body, answers "bytes sha256"
	eventPath = "/sse"   // ?n=events&gap=duration: an event stream
	connsPath = "/conns" // on the stats listener: connections accepted
)

// payload is n bytes of a repeating, not all-zero pattern.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// serveBackend runs the backend until ctx ends. Its first line on stdout
// is its URL and the URL of its stats listener.
func serveBackend(ctx context.Context, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b := &backend{sockets: make(map[*websocket.Conn]struct{})}
	b.srv = &http.Server{Handler: b.mux(), ReadHeaderTimeout: 10 * time.Second, ConnState: b.count}
	b.stats = &http.Server{Handler: http.HandlerFunc(b.serveConns), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 2)
	go func() { errs <- b.srv.Serve(ln) }()
	go func() { errs <- b.stats.Serve(sln) }()
	fmt.Fprintf(stdout, "http://%s http://%s\n", ln.Addr(), sln.Addr())
	select {
	case <-ctx.Done():
		b.close()
		return nil
	case err := <-errs:
		b.close()
		return err
	}
}

func (b *backend) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(echoPath, b.serveEcho)
	mux.HandleFunc(blobPath, serveBlob)
	mux.HandleFunc(sinkPath, serveSink)
	mux.HandleFunc(eventPath, serveEvents)
	mux.HandleFunc("/", serveBody)
	return mux
}

func (b *backend) count(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		b.conns.Add(1)
	}
}

func (b *backend) serveConns(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprint(w, b.conns.Load())
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

// serveBlob sends n bytes of the pattern with their length.
func serveBlob(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "n: want a number of bytes", http.StatusBadRequest)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	newPattern(n).WriteTo(w)
}

// serveSink reads the whole request body and answers its length and hex
// SHA-256.
func serveSink(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, fmt.Sprintf("read body after %d bytes: %v", n, err), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
}

// serveEvents sends n server-sent events gap apart, each flushed on its
// own and carrying the wall-clock time it was sent at, in Unix
// nanoseconds.
func serveEvents(w http.ResponseWriter, r *http.Request) {
	n, err1 := strconv.Atoi(r.URL.Query().Get("n"))
	gap, err2 := time.ParseDuration(r.URL.Query().Get("gap"))
	if err1 != nil || err2 != nil || n < 0 || gap < 0 {
		http.Error(w, "want n=events&gap=duration", http.StatusBadRequest)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	rc := http.NewResponseController(w)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, "id: %d\ndata: %d\n\n", i, time.Now().UnixNano()); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
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
	b.stats.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.sockets {
		c.Close()
	}
}
