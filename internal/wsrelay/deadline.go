package wsrelay

import (
	"net"
	"time"
)

// WriteDeadline keeps a socket's write deadline for a WebSocket library
// that sets one before every frame it writes: the socket's deadline moves
// only when the new one is earlier than the one it has, or later by more
// than deadlineSlack. A write then times out at most deadlineSlack sooner
// than asked, and a busy socket resets its timer about once a second
// rather than once a frame. Its methods stand in for the connection's
// SetDeadline and SetWriteDeadline, and run where those would: the
// library calls them under its own write lock.
type WriteDeadline struct {
	set time.Time // the socket's write deadline; zero for none
}

const deadlineSlack = time.Second

// SetWriteDeadline sets c's write deadline to t, or leaves the one it has
// when that is at most deadlineSlack sooner.
func (d *WriteDeadline) SetWriteDeadline(c net.Conn, t time.Time) error {
	if !t.IsZero() && !d.set.IsZero() && !t.Before(d.set) && t.Sub(d.set) < deadlineSlack {
		return nil
	}
	d.set = t
	return c.SetWriteDeadline(t)
}

// SetDeadline sets both of c's deadlines to t.
func (d *WriteDeadline) SetDeadline(c net.Conn, t time.Time) error {
	d.set = t
	return c.SetDeadline(t)
}
