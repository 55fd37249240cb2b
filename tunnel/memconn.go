package tunnel

import (
	"context"
	"net"
	"sync"
)

// memListener hands the connections its dial makes to an http.Server,
// in memory: the tunnel's forwarding code dials the Handler as it would
// dial a service over TCP, and the Handler sees a genuine HTTP/1.1
// connection, which it may hijack.
type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex // protects open
	open map[*memConn]struct{}
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), done: make(chan struct{}), open: make(map[*memConn]struct{})}
}

// dial returns the tunnel's end of a new connection; the Handler's end
// goes to Accept.
func (l *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	c := &memConn{Conn: server, l: l}
	l.mu.Lock()
	if l.open == nil {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	l.open[c] = struct{}{}
	l.mu.Unlock()
	select {
	case l.conns <- c:
		return client, nil
	case <-l.done:
		err := net.ErrClosed
		c.Close()
		return nil, err
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

// Accept implements net.Listener.
func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and closes every connection still open, hijacked
// ones included.
func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	l.mu.Lock()
	open := l.open
	l.open = nil
	l.mu.Unlock()
	for c := range open {
		c.Conn.Close()
	}
	return nil
}

// Addr implements net.Listener.
func (l *memListener) Addr() net.Addr { return memAddr{} }

// memConn is the Handler's end of a connection.
type memConn struct {
	net.Conn
	l *memListener
}

func (c *memConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.open, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "keyhole-tunnel" }
