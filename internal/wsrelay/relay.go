// Package wsrelay relays one WebSocket over a keyhole stream, the same way
// on the proxy (toward a visitor) and on the client (toward the private
// service): every message keeps its type, its bytes and its order, and a
// close keeps its code and reason, both ways. Control frames are answered
// hop by hop; the closing handshake runs end to end, so each side receives
// the close the other side actually sent.
package wsrelay

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"keyhole/internal/link"
	"keyhole/messages"
)

// Stream is the tunnel side of a relay.
type Stream interface {
	ID() messages.ID
	// Next returns the next frame from the far side.
	Next(ctx context.Context) (link.Inbound, error)
	// Send queues a frame toward the far side, taking b.
	Send(ctx context.Context, b *link.Buffer) error
	// Done is closed when the stream fails (its inbox overflowed, or its
	// link went away); Err says why.
	Done() <-chan struct{}
	Err() error
	// Window is the credit the far side grants this side to send.
	Window() *link.Window
	// SetInline lets f deal with a frame on the link's reader while the
	// relay waits for one, as link.Inbox does.
	SetInline(f func(m *link.Inbound) bool)
}

// Options tune a relay. Zero values mean the defaults.
type Options struct {
	MaxMessage   int64         // larger messages close the socket with 1009; default 512,000 bytes
	CloseWait    time.Duration // wait for the far side's half of a closing handshake; default 5 s
	WriteTimeout time.Duration // one message to the socket; default 30 s
	// Tap, when set, sees every piece of every message relayed, both
	// ways (fromSocket: read from ws), before it goes on; it must not
	// keep p nor block. The two ways may call it at once, but never one
	// way twice at once.
	Tap func(fromSocket, text bool, p []byte, end bool)
}

// Close codes keyhole itself sends.
const (
	CodeGoingAway   = websocket.CloseGoingAway               // 1001: the link or the proxy went away
	CodeProtocol    = websocket.CloseProtocolError           // 1002: the socket broke RFC 6455
	CodeInvalidText = websocket.CloseInvalidFramePayloadData // 1007: a text message (or close reason) that is not UTF-8
	CodeTooBig      = websocket.CloseMessageTooBig           // 1009: a message over the cap
	CodeInternal    = websocket.CloseInternalServerErr       // 1011
	CodeTryLater    = websocket.CloseTryAgainLater           // 1013: the reader was too slow
	maxCloseReason  = 123
	defaultMaxBytes = 512000
)

// Relay pumps messages between ws and st until either side closes, then
// finishes the closing handshake and closes ws. It returns what ended it.
func Relay(ctx context.Context, ws *websocket.Conn, st Stream, opts Options) error {
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = defaultMaxBytes
	}
	if opts.CloseWait <= 0 {
		opts.CloseWait = 5 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	ws.SetReadLimit(opts.MaxMessage)
	ws.SetReadDeadline(time.Time{})
	// The reply to a close comes from the far end, not from this hop.
	ws.SetCloseHandler(func(int, string) error { return nil })

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &relay{ws: ws, st: st, opts: opts}
	if c, ok := ws.NetConn().(interface{ Socket() *Conn }); ok && c.Socket().raw != nil {
		r.sock = c.Socket()
	}
	read := make(chan error, 1)
	write := make(chan error, 1)
	go func() { read <- r.toStream(ctx) }()
	go func() { write <- r.toSocket(ctx) }()
	go r.watch(ctx)

	var err error
	select {
	case err = <-read:
		if !isClose(err) {
			cancel() // the socket is gone: nothing more to write to it
		}
		r.await(write, cancel)
	case err = <-write:
		r.await(read, cancel)
	}
	ws.Close()
	return err
}

type relay struct {
	ws   *websocket.Conn
	st   Stream
	opts Options
	sock *Conn // under ws, if messages can be written inline; else nil

	// What toSocket knows of the messages it writes. The link's reader
	// uses it too, in its place, when it writes a message itself
	// (inline): the inbox makes the two take turns.
	w        io.WriteCloser // the message being written, if it spans frames
	check    textCheck
	text     *textCheck // &check while a text message is open
	consumed int64      // credit to grant back
	onWire   bool       // the next frame was written inline, in part: flush the rest
	tapped   bool       // the next frame was tapped inline, but not written
}

// creditEvery is how many bytes written to the socket earn the far side
// a Credit frame.
const creditEvery = messages.InitialWindow / 4

// await waits a bounded time for the other direction to finish its half
// of the closing handshake.
func (r *relay) await(other chan error, cancel context.CancelFunc) {
	t := time.NewTimer(r.opts.CloseWait)
	defer t.Stop()
	select {
	case <-other:
	case <-t.C:
		cancel()
		r.ws.Close()
		<-other
	}
}

// watch closes the socket as soon as the stream fails, so a write blocked
// on a slow reader cannot outlive it.
func (r *relay) watch(ctx context.Context) {
	select {
	case <-r.st.Done():
		code, text := failureStatus(r.st.Err())
		r.teardown(ctx, code, text)
		r.writeClose(code, text)
		r.ws.Close()
	case <-ctx.Done():
	}
}

func failureStatus(err error) (int, string) {
	if errors.Is(err, link.ErrOverflow) {
		return CodeTryLater, "keyhole: peer sent past its credit"
	}
	return CodeGoingAway, "keyhole: tunnel went away"
}

// toStream forwards the socket's messages as WSMessage frames of at most
// one chunk each, the last marked FlagEnd, and ends with a WSTeardown.
func (r *relay) toStream(ctx context.Context) error {
	id := r.st.ID()
	var check textCheck
	var text *textCheck // &check while reading a text message
	for {
		typ, msg, err := r.ws.NextReader()
		if err != nil {
			return r.readFailed(ctx, err)
		}
		var flags messages.Flags
		text = nil
		if typ == websocket.TextMessage {
			flags = messages.FlagText
			text = &check
		}
		for {
			c := link.Chunk()
			n, err := io.ReadFull(msg, c.Payload())
			last := err == io.EOF || err == io.ErrUnexpectedEOF
			if err != nil && !last {
				c.Free()
				return r.readFailed(ctx, err)
			}
			if text != nil && (!text.add(c.Payload()[:n]) || last && !text.end()) {
				c.Free()
				return r.fail(ctx, CodeInvalidText, invalidText, true)
			}
			if r.opts.Tap != nil {
				r.opts.Tap(true, typ == websocket.TextMessage, c.Payload()[:n], last)
			}
			f := flags
			if last {
				f |= messages.FlagEnd
			}
			c.Seal(messages.TypeWSMessage, f, id, n)
			if err := r.st.Window().Acquire(ctx, r.st.Done(), link.Cost(n)); err != nil {
				c.Free()
				return err
			}
			if err := r.st.Send(ctx, c); err != nil {
				return err
			}
			if last {
				break
			}
		}
	}
}

// readFailed passes on why the socket's reader failed. Unless the peer
// closed, the socket is then read until the peer goes, briefly.
func (r *relay) readFailed(ctx context.Context, err error) error {
	code, text := readStatus(err)
	r.teardown(ctx, code, text)
	if !isClose(err) {
		r.linger()
	}
	return err
}

// readStatus is the close code and reason to pass on for a read error.
// The WebSocket library has failed the socket itself with 1002 on a
// protocol error (a bad close code, an oversized or fragmented control
// frame, reserved bits); the far side is told 1002, or 1007 when the
// error was a close reason that is not UTF-8.
func readStatus(err error) (int, string) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return ce.Code, ce.Text
	case errors.Is(err, websocket.ErrReadLimit):
		return CodeTooBig, "message too big"
	case err.Error() == errCloseNotUTF8:
		return CodeInvalidText, "keyhole: close reason is not UTF-8"
	case isProtocolError(err):
		return CodeProtocol, truncate("keyhole: " + strings.TrimPrefix(err.Error(), "websocket: "))
	default:
		return websocket.CloseAbnormalClosure, ""
	}
}

func isClose(err error) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce)
}

func (r *relay) teardown(ctx context.Context, code int, text string) {
	st := messages.Status{Code: uint16(code), Text: text}
	r.st.Send(ctx, link.Frame(messages.TypeWSTeardown, 0, r.st.ID(), st.Append(nil)))
}

// toSocket writes the far side's messages to the socket until a teardown.
// While it waits, the link's reader writes what it can itself (inline).
func (r *relay) toSocket(ctx context.Context) error {
	if r.sock != nil {
		r.st.SetInline(r.inline)
		defer r.st.SetInline(nil)
	}
	for {
		m, err := r.st.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				r.writeClose(CodeGoingAway, "")
			}
			return err
		}
		f := m.F
		switch f.Type {
		case messages.TypeWSMessage:
			if err := r.writeMessage(ctx, f); err != nil {
				m.B.Free()
				return err
			}
			m.B.Free()
			if r.consumed >= creditEvery {
				r.st.Send(ctx, link.Frame(messages.TypeCredit, 0, r.st.ID(), messages.AppendCredit(nil, uint32(r.consumed))))
				r.consumed = 0
			}
		case messages.TypeWSTeardown:
			st, _ := messages.ParseStatus(f.Payload)
			m.B.Free()
			r.writeClose(int(st.Code), st.Text)
			return &websocket.CloseError{Code: int(st.Code), Text: st.Text}
		case messages.TypeError:
			st, _ := messages.ParseStatus(f.Payload)
			m.B.Free()
			r.writeClose(CodeInternal, st.Text)
			return errors.New(st.Text)
		default:
			m.B.Free() // not part of a WebSocket stream; ignored
		}
	}
}

// writeMessage writes one WSMessage frame's piece of a message.
func (r *relay) writeMessage(ctx context.Context, f messages.Frame) error {
	if r.onWire {
		// Written inline, in part: the socket holds the rest.
		r.onWire = false
		return r.sock.Flush(time.Now().Add(r.opts.WriteTimeout))
	}
	whole := r.w == nil && f.End() // a message in one frame: written at once
	typ := websocket.BinaryMessage
	if r.w == nil {
		r.text = nil
		if f.Flags&messages.FlagText != 0 {
			typ = websocket.TextMessage
			r.text = &r.check
		}
		r.ws.SetWriteDeadline(time.Now().Add(r.opts.WriteTimeout))
		if !whole {
			var err error
			if r.w, err = r.ws.NextWriter(typ); err != nil {
				return err
			}
		}
	}
	if r.text != nil && (!r.text.add(f.Payload) || f.End() && !r.text.end()) {
		return r.fail(ctx, CodeInvalidText, invalidText, false)
	}
	if r.opts.Tap != nil && !r.tapped {
		r.opts.Tap(false, f.Flags&messages.FlagText != 0, f.Payload, f.End())
	}
	r.tapped = false
	var err error
	switch {
	case whole:
		// Without the message writer NextWriter allocates, on a
		// server's socket.
		err = r.ws.WriteMessage(typ, f.Payload)
	default:
		_, err = r.w.Write(f.Payload)
		if err == nil && f.End() {
			err, r.w = r.w.Close(), nil
		}
	}
	r.consumed += link.Cost(len(f.Payload))
	return err
}

// inline writes a message of one frame straight from the link's reader,
// in toSocket's place, when the socket takes it at once; anything else
// (a message in pieces, a text that is not UTF-8, a Credit to grant, a
// full socket) it leaves to toSocket. A frame the socket took only part
// of goes to toSocket as well, to write the rest.
func (r *relay) inline(m *link.Inbound) bool {
	f := m.F
	n := link.Cost(len(f.Payload))
	if f.Type != messages.TypeWSMessage || !f.End() || r.w != nil || r.onWire || r.consumed+n >= creditEvery {
		return false
	}
	text := f.Flags&messages.FlagText != 0
	if text && !utf8.Valid(f.Payload) {
		return false
	}
	if r.opts.Tap != nil {
		r.opts.Tap(false, text, f.Payload, true) // before the far end can answer
	}
	began, whole := r.sock.TryWriteMessage(text, f.Payload)
	if !began {
		r.tapped = true
		return false
	}
	r.consumed += n
	if !whole {
		r.onWire = true
		return false
	}
	m.B.Free()
	return true
}

// writeClose sends a close frame, mapping codes that may not appear on
// the wire: 1005 (no status) becomes a close with no status, 1006
// (connection lost) becomes 1001, anything else invalid becomes 1011.
func (r *relay) writeClose(code int, text string) {
	var payload []byte
	switch {
	case code == websocket.CloseNoStatusReceived:
		payload = []byte{}
	case code == websocket.CloseAbnormalClosure:
		payload = websocket.FormatCloseMessage(CodeGoingAway, truncate(text))
	case validCode(code):
		payload = websocket.FormatCloseMessage(code, truncate(text))
	default:
		payload = websocket.FormatCloseMessage(CodeInternal, truncate(text))
	}
	// The close frame waits for whatever holds the socket, a message
	// to a reader too slow perhaps: one that cannot go within the
	// second ends the socket instead.
	stuck := time.AfterFunc(time.Second, func() { r.ws.Close() })
	r.ws.WriteControl(websocket.CloseMessage, payload, time.Now().Add(time.Second))
	stuck.Stop()
}

// validCode reports whether a close code may be sent (RFC 6455 7.4).
func validCode(c int) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// truncate keeps a close reason within a control frame, on a rune
// boundary.
func truncate(s string) string {
	if len(s) <= maxCloseReason {
		return s
	}
	s = s[:maxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
