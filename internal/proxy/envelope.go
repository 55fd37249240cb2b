package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"

	"keyhole/messages"
)

// Node-to-node messages on the bus. Each carries one or more keyhole
// frames of one stream in an envelope:
//
//	kind    uint8    kindToLink, kindToVisitor, kindProbe, kindControl or kindAnswer
//	seq     uint32   per stream and direction, from 0, so a lost message
//	                 shows as a gap
//	from    string8  the sending node
//	label   string8  the tunnel (on kindToLink; empty otherwise)
//	frames  the rest: each a uint32 length and a frame exactly as on a link;
//	        for kindControl and kindAnswer a JSON document instead (control.go)
const (
	kindToLink    = 1 // from the node holding the visitor to the node holding the link
	kindToVisitor = 2 // back
	kindProbe     = 3 // is the node still there? carries no frame
	kindControl   = 4 // an admin request to every node
	kindAnswer    = 5 // a node's answer to it
)

var errEnvelope = errors.New("malformed bus envelope")

type envelope struct {
	kind   byte
	seq    uint32
	from   []byte
	label  []byte
	frames []byte // length-prefixed frames; see next
}

// appendEnvelope appends an envelope holding frames.
func appendEnvelope(dst []byte, kind byte, seq uint32, from, label string, frames ...[]byte) []byte {
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = append(dst, byte(len(from)))
	dst = append(dst, from...)
	dst = append(dst, byte(len(label)))
	dst = append(dst, label...)
	for _, f := range frames {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

// next splits the first frame off e.frames; ok is false when none is left
// or the rest is malformed.
func (e *envelope) next() (frame []byte, ok bool) {
	if len(e.frames) < 4 {
		return nil, false
	}
	n := binary.BigEndian.Uint32(e.frames)
	if n < messages.HeaderSize || uint64(n) > uint64(len(e.frames)-4) {
		e.frames = nil
		return nil, false
	}
	frame, e.frames = e.frames[4:4+n], e.frames[4+n:]
	return frame, true
}

// parseEnvelope decodes an envelope without copying: its fields alias msg.
func parseEnvelope(msg []byte) (envelope, error) {
	var e envelope
	if len(msg) < 7 {
		return e, fmt.Errorf("%w: %d bytes", errEnvelope, len(msg))
	}
	e.kind = msg[0]
	e.seq = binary.BigEndian.Uint32(msg[1:5])
	rest := msg[5:]
	var ok bool
	if e.from, rest, ok = cut8(rest); !ok {
		return e, fmt.Errorf("%w: truncated node name", errEnvelope)
	}
	if e.label, rest, ok = cut8(rest); !ok {
		return e, fmt.Errorf("%w: truncated label", errEnvelope)
	}
	e.frames = rest
	if (e.kind == kindToLink || e.kind == kindToVisitor) && len(e.frames) < 4+messages.HeaderSize {
		return e, fmt.Errorf("%w: no frame", errEnvelope)
	}
	return e, nil
}

func cut8(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}

// frameID reads the stream id of an encoded frame.
func frameID(frame []byte) messages.ID {
	var id messages.ID
	copy(id[:], frame[4:messages.HeaderSize])
	return id
}
