// Package sock reads and writes TCP sockets with raw system calls.
//
// Go's own socket calls enter the scheduler's system-call state, so that
// a call that blocks can hand its P to another thread. A non-blocking
// socket never blocks, yet each such call made while every P was idle
// wakes the runtime's monitor thread (sysmon), which then wakes every
// 20 µs for a millisecond or more and takes Ps back from calls that ran
// long; a loopback write does the receiver's work too, so many do. A proxy
// and a client that go idle and busy thousands of times a second spent
// about an eighth of their CPU on those wake-ups: 5,000 nanosleeps a
// second each in a WebSocket echo run, 100 with this package. A Conn
// makes the same calls raw, through the same poller, with the same
// deadlines, waiting and errors, but without that state.
package sock

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a TCP connection whose Read, Write and WriteBuffers make raw
// system calls. Everything else is the *net.TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex // one Read at a time: it holds the fields below
	rbuf   []byte
	rn     int
	rerr   syscall.Errno
	readFn func(uintptr) bool // c.read, made once

	wmu     sync.Mutex // one Write or WriteBuffers at a time: it holds the fields below
	one     [1][]byte  // Write's buffer, as oneBufs
	oneBufs net.Buffers
	wbufs   *net.Buffers
	iov     []syscall.Iovec
	wn      int64
	werr    syscall.Errno
	vecFn   func(uintptr) bool // c.writev, made once
}

// Wrap returns c as a Conn if it is a TCP connection the raw calls work
// on, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !supported {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	s := &Conn{TCPConn: tc, rc: rc}
	s.readFn, s.vecFn = s.read, s.writev
	return s
}

// Listener wraps the connections ln accepts (see Wrap).
func Listener(ln net.Listener) net.Listener {
	if !supported {
		return ln
	}
	return &listener{ln}
}

type listener struct{ net.Listener }

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Dialer wraps the connections dial opens (see Wrap).
func Dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if !supported {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}

// maxRW bounds one system call, as Go's own reads and writes do.
const maxRW = 1 << 30

// Read reads like the TCP connection's Read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, errno := rawRead(fd, c.rbuf)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for the socket, then again
		}
		c.rn, c.rerr = n, errno
		return true
	}
}

// Write writes like the TCP connection's Write: all of p, waiting for
// the socket as it must, or an error and what was written before it. It
// is a WriteBuffers of one buffer.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.one[0] = p
	c.oneBufs = c.one[:]
	n, err := c.writeLocked(&c.oneBufs, "write")
	c.one[0] = nil
	c.wmu.Unlock()
	return int(n), err
}

// WriteBuffers writes bufs as net.Buffers.WriteTo writes them to a TCP
// connection, in as few writev calls as the socket takes, and consumes
// what it wrote.
func (c *Conn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	c.wmu.Lock()
	n, err := c.writeLocked(bufs, "writev")
	c.wmu.Unlock()
	return n, err
}

// writeLocked writes bufs, holding wmu; op names the call in errors.
func (c *Conn) writeLocked(bufs *net.Buffers, op string) (int64, error) {
	c.wbufs, c.wn, c.werr = bufs, 0, 0
	err := c.rc.Write(c.vecFn)
	n, errno := c.wn, c.werr
	c.wbufs = nil
	clear(c.iov) // hold none of the buffers' memory
	return n, c.writeError(op, err, errno)
}

// maxIOV is how many buffers one writev takes (IOV_MAX on Linux).
const maxIOV = 1024

func (c *Conn) writev(fd uintptr) bool {
	for len(*c.wbufs) > 0 {
		c.iov = c.iov[:0]
		for _, b := range *c.wbufs {
			if len(b) == 0 {
				continue
			}
			c.iov = append(c.iov, iovec(b))
			if len(c.iov) == maxIOV {
				break
			}
		}
		if len(c.iov) == 0 {
			*c.wbufs = (*c.wbufs)[:0]
			return true
		}
		n, errno := rawWritev(fd, c.iov)
		switch errno {
		case 0:
			c.wn += int64(n)
			consume(c.wbufs, int64(n))
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait for room, then on
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

// consume drops the first n bytes of bufs.
func consume(bufs *net.Buffers, n int64) {
	for len(*bufs) > 0 {
		b := (*bufs)[0]
		if int64(len(b)) > n {
			(*bufs)[0] = b[n:]
			return
		}
		n -= int64(len(b))
		(*bufs)[0] = nil
		*bufs = (*bufs)[1:]
	}
}

func (c *Conn) writeError(op string, err error, errno syscall.Errno) error {
	switch {
	case err != nil:
		return c.opError("write", err)
	case errno != 0:
		return c.opError("write", os.NewSyscallError(op, errno))
	}
	return nil
}

// opError is the error Go's own call would return: the RawConn's says
// "raw-read" or "raw-write", and wraps what its poller said.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
