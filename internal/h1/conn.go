package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// conn is one visitor connection on the fast path.
type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	res    response // reused by each request
	pre    []byte   // head bytes a request took that net/http is to read again
	watch  *time.Timer
	// The deadlines last set on nc, by the serving goroutine; see
	// setReadDeadline.
	rdl, wdl time.Time

	// The watch: once a request has run for watchAfter, a goroutine
	// waits on the connection for the visitor leaving. mu guards state.
	mu       sync.Mutex
	state    watchState
	watching chan struct{} // closed when the watch ends
	cancel   context.CancelFunc
	gone     bool // the watch saw the visitor leave
}

type watchState uint8

const (
	watchArmed   watchState = iota // the request runs; no watch yet
	watchRunning                   // the watch waits on the connection
	watchOff                       // the request is done
)

// aLongTimeAgo is a deadline that ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *conn) serve() {
	defer c.s.remove(c)
	c.remote = c.nc.RemoteAddr().String()
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c.nc)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset(c.nc)
	handed := false
	defer func() {
		c.bw.Reset(nil)
		writers.Put(c.bw)
		if !handed {
			c.br.Reset(nil)
			readers.Put(c.br)
			c.nc.Close()
		}
		if c.watch != nil {
			c.watch.Stop()
		}
	}()
	for first := true; ; first = false {
		wait := c.s.HS.IdleTimeout
		if first || wait <= 0 {
			wait = c.s.HS.ReadHeaderTimeout
		}
		if wait > 0 {
			c.setReadDeadline(time.Now().Add(wait))
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.s.setIdle(c, false) {
			return
		}
		req, ok := c.readRequest(first)
		if req == nil {
			if ok {
				handed = true
				c.handOver()
			}
			return
		}
		if !c.serveRequest(req) {
			return
		}
		if !c.s.setIdle(c, true) {
			return
		}
	}
}

// readRequest reads the next request if the fast path takes it. When it
// does not, it returns nil and true if the connection is to go to
// net/http, nil and false if it is to close.
func (c *conn) readRequest(first bool) (*http.Request, bool) {
	end := headerEnd(c.br)
	if end < 0 {
		if c.br.Buffered() == bufSize {
			return nil, true // a long head: net/http applies its limit
		}
		if d := c.s.HS.ReadHeaderTimeout; d > 0 && !first {
			c.setReadDeadline(time.Now().Add(d))
		}
		for end < 0 && c.br.Buffered() < bufSize {
			if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
				return nil, false
			}
			end = headerEnd(c.br)
		}
		if end < 0 {
			return nil, true
		}
	}
	head, _ := c.br.Peek(end)
	if !simple(head) {
		return nil, true
	}
	before := c.br.Buffered()
	req, err := http.ReadRequest(c.br)
	if err != nil || !eligible(req) {
		// ReadRequest reads no further than the blank line, all of it
		// in the buffer already, so what it took is still there, in
		// head, for net/http to read again.
		took := before - c.br.Buffered()
		if took > end {
			return nil, false
		}
		c.pre = head[:took]
		return nil, true
	}
	req.RemoteAddr = c.remote
	return req, true
}

// headerEnd returns the length of the request head at the start of br's
// buffer, up to and with its blank line, or -1 if the buffer holds no
// whole head.
func headerEnd(br *bufio.Reader) int {
	buf, _ := br.Peek(br.Buffered())
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		line := buf[i : i+j]
		i += j + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i
		}
	}
}

// simple reports whether a head may be a fast-path request at all, from
// its request line: GET or HEAD of an origin-form target over HTTP/1.1.
func simple(head []byte) bool {
	line := head
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		line = head[:i]
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	var rest []byte
	switch {
	case bytes.HasPrefix(line, []byte("GET /")):
		rest = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD /")):
		rest = line[5:]
	default:
		return false
	}
	return bytes.HasSuffix(rest, []byte(" HTTP/1.1")) && bytes.IndexByte(rest, ' ') == len(rest)-len(" HTTP/1.1")
}

// eligible reports whether a parsed request is one the fast path serves:
// no body, no upgrade, no Expect, a valid Host, and every field valid
// as net/http's server requires. Anything else net/http serves or
// refuses.
func eligible(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.URL.Host != "" ||
		r.ContentLength != 0 || len(r.TransferEncoding) != 0 || r.Body != http.NoBody {
		return false
	}
	// ReadRequest took one Host field at most, into r.Host.
	if r.Host == "" || !httpguts.ValidHostHeader(r.Host) {
		return false
	}
	for k, vv := range r.Header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade":
			return false
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}

// handOver passes the connection, with what was read of it, to the
// http.Server.
func (c *conn) handOver() {
	pre := append([]byte(nil), c.pre...)
	c.pre = nil
	if n := c.br.Buffered(); n > 0 {
		rest, _ := c.br.Peek(n)
		pre = append(pre, rest...)
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.nc.SetReadDeadline(time.Time{})
	rc := &replayConn{Conn: c.nc, pre: pre}
	if !c.s.handoff.give(rc) {
		c.nc.Close()
	}
}

// serveRequest runs the handler for req and finishes its response; false
// when the connection is to close.
func (c *conn) serveRequest(req *http.Request) bool {
	ctx, cancel := context.WithCancel(context.Background())
	req = req.WithContext(ctx)
	if d := c.s.HS.WriteTimeout; d > 0 {
		c.setWriteDeadline(time.Now().Add(d))
	}
	w := &c.res
	w.reset(c, req)
	c.arm(cancel)
	ok := c.run(w, req)
	c.disarm()
	cancel()
	if !ok {
		return false
	}
	if err := w.finish(); err != nil || w.closeAfter || c.gone {
		return false
	}
	return true
}

// run calls the handler, as net/http does: a panic with
// http.ErrAbortHandler ends the connection quietly, any other is logged
// with its stack and ends it too.
func (c *conn) run(w *response, req *http.Request) (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logf("http: panic serving %v: %v\n%s", c.remote, err, buf)
			}
			ok = false
		}
	}()
	c.s.HS.Handler.ServeHTTP(w, req)
	return true
}

// arm starts the clock after which the connection is watched.
func (c *conn) arm(cancel context.CancelFunc) {
	c.mu.Lock()
	c.state, c.cancel, c.gone = watchArmed, cancel, false
	c.mu.Unlock()
	if c.watch == nil {
		c.watch = time.AfterFunc(watchAfter, c.watchConn)
	} else {
		c.watch.Reset(watchAfter)
	}
}

// watchConn waits on the connection while the request runs: a read that
// fails means the visitor went away (or sent its next request early,
// which the read keeps in the buffer), and cancels the request.
func (c *conn) watchConn() {
	c.mu.Lock()
	if c.state != watchArmed {
		c.mu.Unlock()
		return
	}
	c.state = watchRunning
	c.watching = make(chan struct{})
	done := c.watching
	// Under mu, so that disarm's deadline, which ends the read, comes
	// after this one.
	c.nc.SetReadDeadline(time.Time{})
	c.mu.Unlock()
	_, err := c.br.Peek(1)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		c.mu.Lock()
		c.gone = true
		c.cancel()
		c.mu.Unlock()
	}
	close(done)
}

// disarm ends the watch, waiting for it if it runs.
func (c *conn) disarm() {
	c.watch.Stop()
	c.mu.Lock()
	st := c.state
	c.state = watchOff
	done := c.watching
	c.mu.Unlock()
	if st == watchRunning {
		c.nc.SetReadDeadline(aLongTimeAgo)
		<-done
		c.nc.SetReadDeadline(time.Time{})
		c.rdl = time.Time{}
	}
}

// deadlineSlack is how much later than the one in force a new deadline
// must be to be set: a busy connection moves its timers about once a
// second, not once a request, and its timeouts run up to this much short.
const deadlineSlack = time.Second

// setReadDeadline and setWriteDeadline set nc's deadlines from the serving
// goroutine, but leave one where it is when t would only move it later by
// less than deadlineSlack. A deadline that comes earlier, or none, is
// always set.
func (c *conn) setReadDeadline(t time.Time) error {
	if nearby(c.rdl, t) {
		return nil
	}
	c.rdl = t
	return c.nc.SetReadDeadline(t)
}

func (c *conn) setWriteDeadline(t time.Time) error {
	if nearby(c.wdl, t) {
		return nil
	}
	c.wdl = t
	return c.nc.SetWriteDeadline(t)
}

// nearby reports whether deadline t is cur or later than it by less than
// deadlineSlack.
func nearby(cur, t time.Time) bool {
	return !cur.IsZero() && !t.IsZero() && !t.Before(cur) && t.Sub(cur) < deadlineSlack
}
