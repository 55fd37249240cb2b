package link

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// BurstReader reads a link's socket for a small bufio.Reader. While the
// link is busy with small frames (its last read was a small one that
// filled what the reader asked for, so more was likely waiting), each
// read takes all the socket holds, up to burstSize, in one system call,
// into a buffer borrowed only while it holds unread bytes. A busy link
// then reads a batch of frames at once, where its small reader alone
// would take one system call per kilobyte. A quiet link, or one that
// registers, reads straight into the reader's own buffer and borrows
// nothing: many at once would otherwise leave large buffers behind as
// garbage.
//
// Reads at least directRead long go straight to the socket, so a large
// frame is not copied twice. Where the socket gives no RawConn (TLS, a
// PROXY-protocol wrapper, another OS) it reads the connection as it is.
type BurstReader struct {
	conn net.Conn
	raw  syscall.RawConn // nil: read conn directly
	buf  *[]byte         // borrowed from bursts while it holds unread bytes
	r, w int             // the unread bytes are (*buf)[r:w]
	busy bool            // the last read was small and filled what was asked for
}

// A burst holds what a busy link's peer sent in one go (a batch of small
// frames is a few KiB to a few tens of KiB). It is small enough that a
// reader held up meanwhile (by its rate limiter, say) keeps little: its
// socket's own buffer holds more.
const (
	burstSize  = 16 << 10
	directRead = 8 << 10
)

var bursts = sync.Pool{New: func() any { b := make([]byte, burstSize); return &b }}

// NewBurstReader reads conn in bursts where it can.
func NewBurstReader(conn net.Conn) *BurstReader {
	b := &BurstReader{conn: conn}
	if sc, ok := conn.(syscall.Conn); ok && canBurst {
		b.raw, _ = sc.SyscallConn()
	}
	return b
}

// Buffered is how many bytes were read from the socket and not yet
// returned.
func (b *BurstReader) Buffered() int { return b.w - b.r }

func (b *BurstReader) Read(p []byte) (int, error) {
	if b.buf == nil {
		if b.raw == nil || len(p) >= directRead {
			// Large frames go straight into their buffers; a burst
			// between them would only copy their bytes once more.
			b.busy = false
			return b.conn.Read(p)
		}
		if !b.busy {
			n, err := b.conn.Read(p)
			b.busy = n == len(p)
			return n, err
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
		b.busy = b.w > len(p)
	}
	n := copy(p, (*b.buf)[b.r:b.w])
	b.r += n
	if b.r == b.w {
		bursts.Put(b.buf)
		b.buf, b.r, b.w = nil, 0, 0
	}
	return n, nil
}

// fill waits for the socket to have bytes (within the connection's read
// deadline) and reads what it has into a borrowed buffer.
func (b *BurstReader) fill() error {
	var rerr error
	err := b.raw.Read(func(fd uintptr) bool {
		buf := bursts.Get().(*[]byte)
		n, err := readFD(fd, *buf)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			bursts.Put(buf)
			return false // wait for the socket, then again
		}
		switch {
		case err != nil:
			rerr = &net.OpError{Op: "read", Net: "tcp", Source: b.conn.LocalAddr(), Addr: b.conn.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		case n == 0:
			rerr = io.EOF
		default:
			b.buf, b.r, b.w = buf, 0, n
			return true
		}
		bursts.Put(buf)
		return true
	})
	if err != nil {
		return err
	}
	return rerr
}
