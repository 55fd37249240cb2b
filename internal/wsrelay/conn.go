package wsrelay

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"keyhole/internal/sock"
)

// Conn is the socket under a relayed WebSocket. It serializes every
// write to the socket, the WebSocket library's and the relay's own, so
// that the relay can write a message straight from the link's reader
// when the socket takes it at once (TryWriteMessage), and it keeps write
// deadlines cheap: the socket's deadline moves only when a write asks for
// one earlier than the one it has, or later by more than deadlineSlack.
// A write then times out at most deadlineSlack sooner than asked, and a
// busy socket resets its timer about once a second rather than once a
// frame.
//
// The library writes each frame with one Write, after setting its
// deadline; a close frame among them ends TryWriteMessage, so no message
// follows a close.
type Conn struct {
	net.Conn
	client bool            // frames are masked: this is the client's end
	raw    syscall.RawConn // nil: no tries (not a plain socket)
	next   atomic.Int64    // the write deadline last asked for, in Unix ns; 0 for none
	out    atomic.Int64    // bytes written

	mu      sync.Mutex // held by the one writer; protects the fields below
	set     time.Time  // the socket's write deadline; zero for none
	pending []byte     // the rest of a frame a try wrote only part of
	closing bool       // a close frame was written
	frame   []byte     // a try's frame
}

const deadlineSlack = time.Second

// NewConn returns c as the socket of a WebSocket's server end, or of its
// client end (whose frames are masked) when client is set.
func NewConn(c net.Conn, client bool) *Conn {
	s := &Conn{Conn: c, client: client}
	if sc, ok := c.(syscall.Conn); ok {
		s.raw, _ = sc.SyscallConn()
	}
	return s
}

// Written is the number of bytes written to the socket.
func (c *Conn) Written() int64 { return c.out.Load() }

// SetWriteDeadline sets the deadline of the writes that follow.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.next.Store(ns)
	return nil
}

// SetDeadline sets the socket's read deadline and the deadline of the
// writes that follow to t.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

// Write writes p after the rest of a frame a try left. It waits for the
// socket's other writer, whose own deadline bounds it: the library takes
// any error of a write as the end of the socket, so a write that only
// waited must not fail.
func (c *Conn) Write(p []byte) (int, error) {
	deadline := c.deadline()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[0] == 0x80|closeOpcode {
		c.closing = true
	}
	if err := c.flush(deadline); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// Flush writes the rest of a frame a try left, if any, by the deadline.
func (c *Conn) Flush(deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flush(deadline)
}

func (c *Conn) flush(deadline time.Time) error {
	if err := c.setWriteDeadline(deadline); err != nil || len(c.pending) == 0 {
		return err
	}
	n, err := c.Conn.Write(c.pending)
	c.out.Add(int64(n))
	if err != nil {
		return err
	}
	c.pending = c.pending[:0]
	return nil
}

// TryWriteMessage writes a whole message as one frame, if the socket
// takes it without waiting, and nothing else is being or waits to be
// written. It reports whether it wrote any of it: if not, the message is
// the caller's to write as usual. Of a frame the socket took only part
// of, the rest waits here (whole reports false), written before anything
// else; Flush writes it.
func (c *Conn) TryWriteMessage(text bool, p []byte) (began, whole bool) {
	if c.raw == nil {
		return false, false
	}
	if !c.mu.TryLock() {
		return false, false
	}
	defer c.mu.Unlock()
	if c.closing || len(c.pending) > 0 {
		return false, false
	}
	c.frame = appendFrame(c.frame[:0], text, c.client, p)
	frame := c.frame
	var n int
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for {
			n, errno = sock.RawWrite(fd, frame)
			if errno != syscall.EINTR {
				return true // never wait for the socket
			}
		}
	})
	if err != nil || errno != 0 || n <= 0 {
		return false, false
	}
	c.out.Add(int64(n))
	if n < len(frame) {
		c.pending = append(c.pending[:0], frame[n:]...)
		return true, false
	}
	return true, true
}

func (c *Conn) deadline() time.Time {
	if ns := c.next.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// setWriteDeadline sets the socket's write deadline to t, or leaves the
// one it has when that is at most deadlineSlack sooner.
func (c *Conn) setWriteDeadline(t time.Time) error {
	if !t.IsZero() && !c.set.IsZero() && !t.Before(c.set) && t.Sub(c.set) < deadlineSlack {
		return nil
	}
	c.set = t
	return c.Conn.SetWriteDeadline(t)
}

// WebSocket frame bits (RFC 6455 section 5.2).
const (
	finBit        = 0x80
	maskBit       = 0x80
	textOpcode    = 1
	binaryOpcode  = 2
	closeOpcode   = 8
	maxHeaderSize = 14
)

// appendFrame appends p as a final text or binary frame, masked with a
// fresh key when masked is set.
func appendFrame(b []byte, text, masked bool, p []byte) []byte {
	op := byte(binaryOpcode)
	if text {
		op = textOpcode
	}
	var mask byte
	if masked {
		mask = maskBit
	}
	b = append(b, finBit|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, mask|byte(n))
	case n <= 0xffff:
		b = append(b, mask|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, p...)
	}
	key := rand.Uint32()
	b = binary.LittleEndian.AppendUint32(b, key)
	start := len(b)
	b = append(b, p...)
	maskBytes(b[start:], key)
	return b
}

// maskBytes XORs p with the masking key, key's bytes in little-endian
// order being the key's octets in order.
func maskBytes(p []byte, key uint32) {
	k := uint64(key) | uint64(key)<<32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= byte(key >> (8 * (i % 4)))
	}
}

// Socket returns c; types that embed a Conn have it too, which is how the
// relay finds the Conn under the library's connection.
func (c *Conn) Socket() *Conn { return c }
