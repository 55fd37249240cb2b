package proxy

import (
	"bufio"
	"net"
	"net/http"

	"keyhole/internal/h1"
	"keyhole/internal/link"
)

// linkReadBuffer is the read buffer of a link's WebSocket. Frame headers
// and small frames are read through it; larger reads bypass it, straight
// into the frame's buffer. Idle links are many: each holds one. It reads
// the socket through a link.BurstReader, so that a busy link takes a
// batch of frames in one system call all the same.
const linkReadBuffer = 1 << 10

// hijackTap passes a link's upgrade through and hands the WebSocket a
// bufio.Reader of linkReadBuffer bytes over a link.BurstReader in place
// of net/http's 4 KiB one:
// the upgrader leaves ReadBufferSize at zero, so it reuses the reader it
// is given rather than allocate another. The tap keeps that reader, and
// knowing how much it holds lets an idle link wait for the socket itself
// (link.Options ReadAhead).
type hijackTap struct {
	http.ResponseWriter
	br    *bufio.Reader
	burst *link.BurstReader // under br, when the tap made br
}

func (h *hijackTap) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw == nil {
		return c, brw, err
	}
	c = h1.Unwrap(c)
	if brw.Reader.Buffered() == 0 { // else the upgrader refuses the connection
		h.burst = link.NewBurstReader(c)
		brw.Reader = bufio.NewReaderSize(h.burst, linkReadBuffer)
	}
	h.br = brw.Reader
	return c, brw, err
}

// readInBursts points the reader the WebSocket reuses at the burst
// reader. Call it once the upgrade is done: the upgrader resets that
// reader onto the bare connection while it measures it, and reads
// nothing itself.
func (h *hijackTap) readInBursts() {
	if h.burst != nil && h.br.Buffered() == 0 {
		h.br.Reset(h.burst)
	}
}

// reader returns the reader the WebSocket reuses, for the link to read
// its frames from itself (link.Options Reader), or nil if it does not
// reuse it (gorilla/websocket takes the hijacked reader when it is over
// 256 bytes).
func (h *hijackTap) reader() *bufio.Reader {
	if h.br == nil || h.br.Size() <= 256 {
		return nil
	}
	return h.br
}

// readAhead returns the Buffered of the reader the WebSocket reuses, or
// nil if it does not reuse it.
func (h *hijackTap) readAhead() func() int {
	br, burst := h.reader(), h.burst // not h: it holds the handler's ResponseWriter
	switch {
	case br == nil:
		return nil
	case burst != nil:
		return func() int { return br.Buffered() + burst.Buffered() }
	}
	return br.Buffered
}
