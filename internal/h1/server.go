// Package h1 serves the plain HTTP/1.1 requests that make up most of a
// proxy's visitors (a GET or HEAD with no body, no upgrade and a short
// head) on a loop of its own, and hands a connection to an http.Server
// for good at the first request that is anything else. The handler is
// the same for both and sees an ordinary *http.Request and
// http.ResponseWriter.
//
// net/http spends about as much CPU again as the work itself on such a
// request: a goroutine started per request to watch for the visitor
// leaving, five deadline changes, the header cloned and sorted, a
// response and its buffers allocated. Here the watch starts only once a
// request has run for watchAfter, a request costs two deadline changes,
// and the connection's buffers and response are reused.
//
// Whatever the fast path does not take (HTTP/1.0, a request with a
// body, Expect, Upgrade, an absolute-form target, a malformed or
// oversized head) goes to the http.Server with the bytes read so far, so
// it is parsed, refused or served exactly as net/http would.
package h1

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves a listener's connections with HS's handler and
// timeouts.
type Server struct {
	HS *http.Server

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*conn]bool // true: idle, waiting for a request
	closing atomic.Bool    // set under mu
	active  sync.WaitGroup
	handoff *handoff
}

// bufSize is the size of each connection's reader and writer. A request
// head that does not fit in the reader goes to net/http.
const bufSize = 4 << 10

// watchAfter is how long a request runs before its connection is
// watched for the visitor going away; sooner than that, the answer
// usually comes first.
const watchAfter = 10 * time.Millisecond

// NewServer returns a Server for ln, whose Serve takes its connections,
// and starts hs serving those handed over to it.
func NewServer(hs *http.Server, ln net.Listener) *Server {
	s := &Server{HS: hs, ln: ln, conns: map[*conn]bool{}, handoff: newHandoff(ln.Addr())}
	go hs.Serve(s.handoff)
	return s
}

// Serve accepts connections until Shutdown or Close, and returns
// http.ErrServerClosed then.
func (s *Server) Serve() error {
	ln := s.ln
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if retryable(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logf("h1: accept error: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{s: s, nc: nc}
		if !s.add(c) {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// retryable reports whether an accept error passes (EMFILE, say), as
// net/http's accept loop judges it.
func retryable(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, closes the connections waiting for a
// request, waits for the others to finish the request they serve, and
// shuts down the http.Server that took the rest, all within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	s.ln.Close()
	for c, idle := range s.conns {
		if idle {
			c.nc.Close()
		}
	}
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- s.HS.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-errc
}

// Close closes the listener and every connection at once, those the
// http.Server took too.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing.Store(true)
	s.ln.Close()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	return s.HS.Close()
}

func (s *Server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = false
	s.active.Add(1)
	return true
}

// setIdle marks c as waiting for a request (idle) or serving one; false
// when the server shuts down and c is to close instead.
func (s *Server) setIdle(c *conn, idle bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = idle
	return true
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Done()
}

func (s *Server) logf(format string, args ...any) {
	if l := s.HS.ErrorLog; l != nil {
		l.Printf(format, args...)
	}
}

// handoff is the listener the http.Server serves: it yields the
// connections the fast path gave up.
type handoff struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// give passes c to the http.Server; false if it has stopped.
func (h *handoff) give(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

// replayConn is a connection handed over with the bytes the fast path
// had already read from it, which its first reads return.
type replayConn struct {
	net.Conn
	pre []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Unwrap returns the connection a hijacked one stands for. A connection
// the fast path handed to net/http reaches a handler that hijacks it
// wrapped, to replay the bytes read before; once net/http has read those
// (it has, by the time a handler upgrades), the socket itself is what the
// handler should keep: *net.TCPConn writes net.Buffers in one writev and
// gives a RawConn, which the wrapper cannot. Any other c is returned as
// it is.
func Unwrap(c net.Conn) net.Conn {
	if rc, ok := c.(*replayConn); ok && len(rc.pre) == 0 {
		return rc.Conn
	}
	return c
}

// CloseWrite lets net/http half-close the connection as it would the
// connection itself.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}
)
