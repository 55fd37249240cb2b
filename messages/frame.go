package messages

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Version is the protocol version carried in every frame header.
// History:
//
//	1: first version.
const Version = 1

// Revision is the newest link revision this package speaks. A revision
// changes what peers do on a link, never the frame layout: a client asks
// for one with RevisionHeader on its WebSocket upgrade, and the proxy says
// in its RegistrationResponse which one the link speaks. History:
//
//	1: Version 1 as first published: credit on WebSocket streams only.
//	2: credit on every body (HTTP requests and responses too), and the
//	   proxy's body cap announced in the RegistrationResponse.
const Revision = 2

// RevisionHeader is the HTTP field of a client's WebSocket upgrade that
// asks for a link revision, as a decimal number.
const RevisionHeader = "Keyhole-Revision"

// Size limits. A frame on the wire is at most MaxFrame bytes; receivers set
// their WebSocket read limit to it before reading anything.
const (
	HeaderSize = 20
	MaxChunk   = 64 << 10 // largest Data or WSMessage payload
	MaxPayload = MaxChunk + 4<<10
	MaxFrame   = HeaderSize + MaxPayload
	MaxPing    = 64 // largest Ping payload
)

// Type says what a frame means. Numbers are never reused.
type Type uint8

const (
	TypeChallenge            Type = 1  // proxy → client, first frame of a connection
	TypeRegistrationRequest  Type = 2  // client → proxy, answers the challenge
	TypeRegistrationResponse Type = 3  // proxy → client, the tunnel is up
	TypeHTTPRequest          Type = 4  // proxy → client, opens a stream
	TypeHTTPResponse         Type = 5  // client → proxy, head of the answer
	TypeData                 Type = 6  // either way, a piece of a body
	TypeWSRequest            Type = 7  // proxy → client, opens a WebSocket stream
	TypeWSResponse           Type = 8  // client → proxy, the service's handshake answer
	TypeWSMessage            Type = 9  // either way, a piece of one WebSocket message
	TypeWSTeardown           Type = 10 // either way, a WebSocket stream closes
	TypePing                 Type = 11 // either way, keepalive (FlagPong on the reply)
	TypeGoAway               Type = 12 // proxy → client: reconnect elsewhere; client → proxy: leaving this link
	TypeError                Type = 13 // either way, a stream (or, with id 0, the link) failed
	TypeCredit               Type = 14 // either way, WebSocket flow-control credit; ignored on HTTP streams
)

var typeNames = [...]string{
	TypeChallenge:            "Challenge",
	TypeRegistrationRequest:  "RegistrationRequest",
	TypeRegistrationResponse: "RegistrationResponse",
	TypeHTTPRequest:          "HTTPRequest",
	TypeHTTPResponse:         "HTTPResponse",
	TypeData:                 "Data",
	TypeWSRequest:            "WSRequest",
	TypeWSResponse:           "WSResponse",
	TypeWSMessage:            "WSMessage",
	TypeWSTeardown:           "WSTeardown",
	TypePing:                 "Ping",
	TypeGoAway:               "GoAway",
	TypeError:                "Error",
	TypeCredit:               "Credit",
}

// String returns the type's name, or Type(n) for a number this version
// does not know.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Flags modify a frame. Which flags a type uses is listed in PROTOCOL.md;
// receivers ignore flags they do not know.
type Flags uint16

const (
	// FlagEnd ends a body or message: on HTTPRequest, HTTPResponse and
	// WSResponse it says no body follows; on Data and WSMessage it marks the
	// last piece.
	FlagEnd Flags = 1 << 0
	// FlagText marks the pieces of a WebSocket text message.
	FlagText Flags = 1 << 1
	// FlagPong marks the reply to a Ping.
	FlagPong Flags = 1 << 2
)

// ID names a stream. Ids are 128-bit random; the zero ID names the link
// itself (registration, Ping, GoAway, link-wide Error).
type ID [16]byte

// NewID returns a fresh random stream id.
func NewID() ID {
	var id ID
	rand.Read(id[:]) // never fails (crypto/rand panics rather than return short)
	return id
}

// IsZero reports whether id is the zero ID, the name of the link itself.
func (id ID) IsZero() bool { return id == ID{} }

// String returns id as 32 lower-case hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Frame is one decoded frame. Payload aliases the buffer it was parsed from.
type Frame struct {
	Type    Type
	Flags   Flags
	ID      ID
	Payload []byte
}

// End reports whether the frame carries FlagEnd.
func (f Frame) End() bool { return f.Flags&FlagEnd != 0 }

// AppendHeader appends a frame header to dst.
func AppendHeader(dst []byte, t Type, flags Flags, id ID) []byte {
	dst = append(dst, Version, byte(t))
	dst = binary.BigEndian.AppendUint16(dst, uint16(flags))
	return append(dst, id[:]...)
}

// PutHeader writes a frame header into the first HeaderSize bytes of b,
// which lets a sender read a payload straight into b[HeaderSize:].
func PutHeader(b []byte, t Type, flags Flags, id ID) {
	_ = b[HeaderSize-1]
	b[0], b[1] = Version, byte(t)
	binary.BigEndian.PutUint16(b[2:4], uint16(flags))
	copy(b[4:HeaderSize], id[:])
}

// Append appends the encoded frame to dst.
func (f Frame) Append(dst []byte) []byte {
	return append(AppendHeader(dst, f.Type, f.Flags, f.ID), f.Payload...)
}

// Parse decodes one frame without copying: the returned Payload aliases b.
func Parse(b []byte) (Frame, error) {
	if len(b) < HeaderSize {
		return Frame{}, fmt.Errorf("%w: frame of %d bytes is shorter than its header", ErrMalformed, len(b))
	}
	if len(b) > MaxFrame {
		return Frame{}, fmt.Errorf("%w: frame of %d bytes", ErrTooLarge, len(b))
	}
	if b[0] != Version {
		return Frame{}, fmt.Errorf("%w %d (this peer speaks version %d)", ErrVersion, b[0], Version)
	}
	f := Frame{
		Type:    Type(b[1]),
		Flags:   Flags(binary.BigEndian.Uint16(b[2:4])),
		Payload: b[HeaderSize:],
	}
	copy(f.ID[:], b[4:HeaderSize])
	if (f.Type == TypeData || f.Type == TypeWSMessage) && len(f.Payload) > MaxChunk {
		return Frame{}, fmt.Errorf("%w: %v piece of %d bytes", ErrTooLarge, f.Type, len(f.Payload))
	}
	return f, nil
}
