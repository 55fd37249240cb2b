package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"keyhole/internal/sock"
)

// ServiceTransport is the default transport toward the private service.
// A request with no body to a plain-HTTP service (most of what visitors
// send: GETs, HEADs) is written and its response read on the goroutine
// that calls RoundTrip, over a pool of its own that uses the base
// transport's dialer and idle limits. http.Transport would hand each
// request to a writer goroutine and its response back from a reader
// goroutine, and wake that reader again at the body's end: three
// goroutine hand-offs, each a thread wake-up when the machine is not
// busy. Requests with a body (whose response may come before the body is
// sent), upgrades, and TLS services go to the base transport.
type ServiceTransport struct {
	base *http.Transport
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	idle   map[string][]*directConn // most recently used last
	sweep  *time.Timer
	closed bool
}

// NewServiceTransport returns a ServiceTransport over base, which carries
// what the direct path does not and lends it its DialContext,
// MaxIdleConnsPerHost and IdleConnTimeout.
func NewServiceTransport(base *http.Transport) *ServiceTransport {
	t := &ServiceTransport{base: base, dial: base.DialContext, idle: map[string][]*directConn{}}
	if t.dial == nil {
		t.dial = (&net.Dialer{}).DialContext
	}
	return t
}

// maxResponseHeader bounds a service's response header block, as
// http.Transport's default does. The link carries far less (a head is one
// frame), so this only keeps a runaway service from growing the client.
const maxResponseHeader = 1 << 20

// reuseCheckAfter is how long a connection may sit idle before it is
// checked for a close by the service before being used again for a
// request that may be sent twice. One the service closed sooner than
// this costs that request a retry.
const reuseCheckAfter = 500 * time.Millisecond

// max1xx bounds the informational responses skipped before the final one.
const max1xx = 5

// RoundTrip implements http.RoundTripper.
func (t *ServiceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !direct(req) || t.base.DisableKeepAlives || t.base.Proxy != nil {
		return t.base.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for {
		c, reused, err := t.conn(req.Context(), addr, !replayable(req))
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(t, req)
		if err == nil {
			return resp, nil
		}
		c.Close()
		var e *directError
		if !reused || !errors.As(err, &e) || !e.retry(req) {
			if ctxErr := req.Context().Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, err
		}
		// A reused connection the service had closed: try the request
		// again on another, as http.Transport does.
	}
}

// direct reports whether req may take the direct path: no body to send,
// a plain http:// service, no upgrade.
func direct(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Body != nil && req.Body != http.NoBody || req.Method == http.MethodConnect {
		return false
	}
	_, upgrade := req.Header["Upgrade"]
	return !upgrade
}

// conn returns an idle connection to addr, or a new one. An idle one
// that the service may have closed meanwhile is checked first when the
// request could not be sent again (check), or when it sat long.
func (t *ServiceTransport) conn(ctx context.Context, addr string, check bool) (c *directConn, reused bool, err error) {
	for {
		c = t.take(addr)
		if c == nil {
			break
		}
		if !check && !c.verify && time.Since(c.idleAt) < reuseCheckAfter || c.alive() {
			return c, true, nil
		}
		c.Close()
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &directConn{Conn: nc, addr: addr, limit: -1}, false, nil
}

// take pops the most recently used idle connection to addr.
func (t *ServiceTransport) take(addr string) *directConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.idle[addr]
	if len(cs) == 0 {
		return nil
	}
	c := cs[len(cs)-1]
	cs[len(cs)-1] = nil
	t.idle[addr] = cs[:len(cs)-1]
	return c
}

// put keeps c for another request, or closes it when the pool for its
// address is full or the transport closed.
func (t *ServiceTransport) put(c *directConn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	max := t.base.MaxIdleConnsPerHost
	if max <= 0 {
		max = http.DefaultMaxIdleConnsPerHost
	}
	if t.closed || len(t.idle[c.addr]) >= max {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.idle[c.addr] = append(t.idle[c.addr], c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.sweepEvery(), t.sweepIdle)
	}
	t.mu.Unlock()
}

// maxSweepEvery bounds how long an idle connection the service closed
// (one in CLOSE-WAIT, holding a descriptor) stays in the pool when no
// request comes to take it.
const maxSweepEvery = 5 * time.Second

// sweepEvery is how often idle connections are looked over.
func (t *ServiceTransport) sweepEvery() time.Duration {
	if d := t.base.IdleConnTimeout / 2; d > 0 && d < maxSweepEvery {
		return d
	}
	return maxSweepEvery
}

// sweepIdle closes the idle connections that the service closed, or
// that sat longer than IdleConnTimeout, and comes back while any remain.
// Looking costs one system call per idle connection, none of which has
// a goroutine reading it.
func (t *ServiceTransport) sweepIdle() {
	var stale []*directConn
	t.mu.Lock()
	cutoff := time.Time{}
	if t.base.IdleConnTimeout > 0 {
		cutoff = time.Now().Add(-t.base.IdleConnTimeout)
	}
	for addr, cs := range t.idle {
		kept := cs[:0]
		for _, c := range cs {
			if c.idleAt.Before(cutoff) || !c.alive() {
				stale = append(stale, c)
				continue
			}
			kept = append(kept, c)
		}
		clear(cs[len(kept):])
		if len(kept) > 0 {
			t.idle[addr] = kept
		} else {
			delete(t.idle, addr)
		}
	}
	t.sweep = nil
	if len(t.idle) > 0 && !t.closed {
		t.sweep = time.AfterFunc(t.sweepEvery(), t.sweepIdle)
	}
	t.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
}

// CloseIdleConnections closes every idle connection, the base
// transport's too.
func (t *ServiceTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*directConn{}
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			c.Close()
		}
	}
	t.base.CloseIdleConnections()
}

// directConn is one connection to the service on the direct path.
type directConn struct {
	net.Conn
	addr   string
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	limit  int64 // bytes Read may still return; -1 for no limit
	wrote  int64 // bytes written, ever
	// verify: the last answer had no body by its nature (to a HEAD, a
	// 204, a 304), so the service may have sent one anyway, late: the
	// connection is checked for unasked bytes before its next use.
	verify bool
}

// Write writes to the connection, counting what went.
func (c *directConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.wrote += int64(n)
	return n, err
}

// Read reads from the connection within the header limit, if one is set.
func (c *directConn) Read(p []byte) (int, error) {
	if c.limit == 0 {
		return 0, errHeaderTooLarge
	}
	if c.limit > 0 && int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.Conn.Read(p)
	if c.limit > 0 {
		c.limit -= int64(n)
	}
	return n, err
}

var errHeaderTooLarge = fmt.Errorf("response header over %d bytes", maxResponseHeader)

// alive reports whether an idle connection is still open: nothing to
// read and no end of stream from the service. It asks the socket without
// waiting; a connection that is not a socket counts as alive.
func (c *directConn) alive() bool {
	if c.br != nil && c.br.Buffered() > 0 {
		return false // bytes nobody asked for
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, errno := sock.RawPeek(fd, b[:])
		alive = errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}

// directError is a failure on the direct path, with what it means for
// trying again.
type directError struct {
	err     error
	written bool // the request may have reached the service
	read    bool // some of a response came back
}

func (e *directError) Error() string { return e.err.Error() }
func (e *directError) Unwrap() error { return e.err }

// retry reports whether req may be sent again on another connection:
// nothing of it reached the service, or it is replayable and no answer
// began (a connection the service closed while it sat idle). These are
// http.Transport's rules.
func (e *directError) retry(req *http.Request) bool {
	return !e.read && (!e.written || replayable(req))
}

// replayable reports whether req, which has no body, may be sent twice.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// roundTrip writes req and reads its response on the calling goroutine.
// A cancelled context breaks off the reads and writes through the
// connection's deadline.
func (c *directConn) roundTrip(t *ServiceTransport, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop := watch(ctx, c)
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(c, 4<<10)
		c.br = bufio.NewReaderSize(c, 16<<10)
	}
	before := c.wrote
	err := writeRequest(c.bw, req)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		stop.release()
		return nil, &directError{err: err, written: c.wrote > before}
	}
	c.limit = maxResponseHeader
	resp, err := c.readResponse(req)
	c.limit = -1
	if err != nil {
		stop.release()
		return nil, err
	}
	body := &directBody{ctx: ctx, t: t, c: c, r: resp.Body, stop: stop,
		reuse: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	c.verify = req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	if resp.Body == http.NoBody {
		body.finish(true)
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

// readResponse reads the final response to req, past informational ones.
func (c *directConn) readResponse(req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		if _, err := c.br.Peek(1); err != nil {
			return nil, &directError{err: err, written: true}
		}
		if resp := readSimpleResponse(c.br, req); resp != nil {
			return resp, nil
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, &directError{err: err, written: true, read: true}
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if n == max1xx {
			return nil, &directError{err: errors.New("too many informational responses"), written: true, read: true}
		}
	}
}

// breaker breaks off a connection's reads and writes, through its
// deadline, when a request's context ends.
type breaker struct {
	sc   *streamCtx  // a stream's context, which has a slot for it
	stop func() bool // any other: context.AfterFunc's
}

func watch(ctx context.Context, c *directConn) breaker {
	if sc, ok := ctx.Value(streamCtxKey{}).(*streamCtx); ok && sc.watch(c) {
		return breaker{sc: sc}
	}
	return breaker{stop: context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })}
}

// release stops watching; it reports false when the context ended first,
// so that the connection has been broken off.
func (b breaker) release() bool {
	if b.sc != nil {
		return b.sc.unwatch()
	}
	return b.stop()
}

// directBody is a response body on the direct path. At its end the
// connection goes back to the pool; closed before its end, or broken,
// the connection is closed (not drained: the rest may never come).
type directBody struct {
	ctx   context.Context
	t     *ServiceTransport
	c     *directConn
	r     io.ReadCloser
	stop  breaker
	reuse bool
	done  atomic.Bool // finished: the connection is back in the pool or closed
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		return 0, errors.New("read on a closed response body")
	}
	n, err := b.r.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
		if ctxErr := b.ctx.Err(); err != io.EOF && ctxErr != nil {
			err = ctxErr // the deadline that broke the read was the cancel's
		}
	}
	return n, err
}

func (b *directBody) Close() error {
	b.finish(false)
	return nil
}

// finish, the first time it is called, hands the connection back when
// the body ended cleanly and the context was not cancelled meanwhile;
// otherwise it closes it, which also breaks off a Read in progress.
func (b *directBody) finish(clean bool) {
	if b.done.Swap(true) {
		return
	}
	if b.stop.release() && clean && b.reuse && b.c.br.Buffered() == 0 {
		b.t.put(b.c)
		return
	}
	b.c.Close()
}
