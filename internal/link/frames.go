package link

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gorilla/websocket"

	"keyhole/messages"
)

// frames reads a link's WebSocket messages (RFC 6455 section 5) itself,
// on the proxy's end, from the buffered reader the WebSocket library
// reads from (Options.Reader). The library's reader allocates for each
// message and unmasks 8 bytes a step; this one allocates nothing and
// unmasks 32 a step, which on a large body was most of the proxy's
// instructions. It reads what the library did for a link: binary
// messages, fragmented or not, every frame masked by the client; pings
// and pongs dropped (keyhole has its own Ping); a close frame ends the
// link with the *websocket.CloseError the library returned.
type frames struct {
	br *bufio.Reader
}

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0
	opText         = 1
	opBinary       = 2
	opClose        = 8
	opPing         = 9
	opPong         = 10
)

// read reads the next message into buf, which holds MaxFrame bytes, and
// returns its length.
func (r *frames) read(buf []byte) (int, error) {
	n := 0
	inMessage := false
	for {
		fin, op, length, key, err := r.header()
		if err != nil {
			return 0, err
		}
		switch op {
		case opClose, opPing, opPong:
			if !fin || length > 125 {
				return 0, protocolError("control frame fragmented or over 125 bytes")
			}
			var ctl [125]byte
			p := ctl[:length]
			if _, err := io.ReadFull(r.br, p); err != nil {
				return 0, eofError(err)
			}
			if op != opClose {
				continue
			}
			maskBytes(p, key)
			return 0, closeError(p)
		case opContinuation:
			if !inMessage {
				return 0, protocolError("continuation frame outside a message")
			}
		case opText:
			return 0, fmt.Errorf("%w: text message on a link", messages.ErrMalformed)
		case opBinary:
			if inMessage {
				return 0, protocolError("new message inside a fragmented one")
			}
		default:
			return 0, protocolError(fmt.Sprintf("unknown opcode %d", op))
		}
		inMessage = true
		if length > uint64(len(buf)-n) {
			return 0, fmt.Errorf("%w: message over %d bytes", messages.ErrTooLarge, len(buf))
		}
		p := buf[n : n+int(length)]
		if _, err := io.ReadFull(r.br, p); err != nil {
			return 0, eofError(err)
		}
		maskBytes(p, key)
		n += len(p)
		if fin {
			return n, nil
		}
	}
}

// header reads a frame's header.
func (r *frames) header() (fin bool, op byte, length uint64, key uint32, err error) {
	p, err := r.br.Peek(2)
	if err != nil {
		return false, 0, 0, 0, eofError(err)
	}
	b0, b1 := p[0], p[1]
	if b0&0x70 != 0 {
		return false, 0, 0, 0, protocolError("reserved bits set")
	}
	if b1&0x80 == 0 {
		return false, 0, 0, 0, protocolError("unmasked frame from the client")
	}
	size := 2 + 4
	switch b1 & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if p, err = r.br.Peek(size); err != nil {
		return false, 0, 0, 0, eofError(err)
	}
	switch length = uint64(b1 & 0x7f); length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(p[2:]))
	case 127:
		length = binary.BigEndian.Uint64(p[2:])
		if length>>63 != 0 {
			return false, 0, 0, 0, protocolError("length with its top bit set")
		}
	}
	key = binary.BigEndian.Uint32(p[size-4:])
	r.br.Discard(size)
	return b0&0x80 != 0, b0 & 0x0f, length, key, nil
}

// protocolError is a frame that breaks RFC 6455.
func protocolError(what string) error {
	return fmt.Errorf("%w: websocket: %s", messages.ErrMalformed, what)
}

// eofError is what the library returns for a connection that ends
// mid-frame or between frames: an abnormal closure.
func eofError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}
	}
	return err
}

// closeError is the close frame with payload p, as the library reports
// it.
func closeError(p []byte) error {
	if len(p) < 2 {
		return &websocket.CloseError{Code: websocket.CloseNoStatusReceived}
	}
	return &websocket.CloseError{Code: int(binary.BigEndian.Uint16(p)), Text: string(p[2:])}
}
