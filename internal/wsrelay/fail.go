package wsrelay

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// ErrInvalidText means a text message was not UTF-8: the relay failed
// both sockets with 1007 rather than deliver it.
var ErrInvalidText = errors.New("text message is not utf-8")

// invalidText is the close reason for a text message that is not UTF-8.
const invalidText = "keyhole: text message is not UTF-8"

// errCloseNotUTF8 is the WebSocket library's error for a close frame
// whose reason is not UTF-8; it has no type to test for.
const errCloseNotUTF8 = "websocket: invalid utf8 payload in close frame"

// lingerFor bounds how long a failed socket is read for the peer's close.
const lingerFor = time.Second

// fail fails the socket with code (RFC 6455 section 7.1.7): a close frame
// to the socket and a WSTeardown with the same code to the far side, which
// closes its socket with it. Nothing of the offending message is passed
// on. The socket's reader then waits for the peer's close (the writer
// leaves that to the reader, which goes on reading).
func (r *relay) fail(ctx context.Context, code int, text string, reader bool) error {
	r.writeClose(code, text)
	r.teardown(ctx, code, text)
	if reader {
		r.linger()
	}
	return ErrInvalidText
}

// linger reads and drops what the peer still sends after the socket was
// failed, until the peer closes or lingerFor passes, so closing does not
// reset the connection before the peer has read the close frame. Only the
// socket's reader calls it, as the last thing it does.
func (r *relay) linger() {
	nc := r.ws.NetConn()
	nc.SetReadDeadline(time.Now().Add(lingerFor))
	io.Copy(io.Discard, nc)
}

// isProtocolError reports whether err is the WebSocket library failing a
// socket that broke RFC 6455. Those errors carry no type: they are the
// library's own plain errors, told apart from its sentinels here.
func isProtocolError(err error) bool {
	return errors.Unwrap(err) == nil &&
		!errors.Is(err, websocket.ErrReadLimit) && !errors.Is(err, websocket.ErrCloseSent) &&
		strings.HasPrefix(err.Error(), "websocket: ")
}
