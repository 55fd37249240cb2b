package wsrelay

import (
	"net"
	"time"
)

// DeadlineConn is a socket for a WebSocket library that sets a write
// deadline before every frame it writes: the socket's deadline moves
// only when the new one is earlier than the one it has, or later by more
// than deadlineSlack. A write then times out at most deadlineSlack sooner
// than asked, and a busy socket resets its timer about once a second
// rather than once a frame. Its deadline methods run where the socket's
// would: the library calls them under its own write lock.
type DeadlineConn struct {
	net.Conn
	set time.Time // the socket's write deadline; zero for none
}

const deadlineSlack = time.Second

// SetWriteDeadline sets the socket's write deadline to t, or leaves the
// one it has when that is at most deadlineSlack sooner.
func (c *DeadlineConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && !c.set.IsZero() && !t.Before(c.set) && t.Sub(c.set) < deadlineSlack {
		return nil
	}
	c.set = t
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both of the socket's deadlines to t.
func (c *DeadlineConn) SetDeadline(t time.Time) error {
	c.set = t
	return c.Conn.SetDeadline(t)
}
