package proxy

import (
	"bufio"
	"net"
	"net/http"
)

// linkReadBuffer is the read buffer of a link's WebSocket. Frame headers
// and small frames are read through it; larger reads bypass it, straight
// into the frame's buffer. Idle links are many: each holds one.
const linkReadBuffer = 1 << 10

// hijackTap passes a link's upgrade through and hands the WebSocket a
// bufio.Reader of linkReadBuffer bytes in place of net/http's 4 KiB one:
// the upgrader leaves ReadBufferSize at zero, so it reuses the reader it
// is given rather than allocate another. The tap keeps that reader, and
// knowing how much it holds lets an idle link wait for the socket itself
// (link.Options ReadAhead).
type hijackTap struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (h *hijackTap) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw == nil {
		return c, brw, err
	}
	if brw.Reader.Buffered() == 0 { // else the upgrader refuses the connection
		brw.Reader = bufio.NewReaderSize(c, linkReadBuffer)
	}
	h.br = brw.Reader
	return c, brw, err
}

// readAhead returns the Buffered of the reader the WebSocket reuses, or
// nil if it does not reuse it (gorilla/websocket takes the hijacked reader
// when it is over 256 bytes).
func (h *hijackTap) readAhead() func() int {
	if h.br == nil || h.br.Size() <= 256 {
		return nil
	}
	return h.br.Buffered
}
