package messages

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Sizes of the registration fields.
const (
	NonceSize     = 32
	PublicKeySize = 32
	InstanceSize  = 16
	SignatureSize = 64
)

// Challenge is the proxy's first frame on a new link.
//
//	nonce   [32]byte, fresh random per link
//	domain  string16, the proxy's domain (lower case)
type Challenge struct {
	Nonce  [NonceSize]byte
	Domain string
}

// Append appends c's encoding to dst; a domain over 65,535 bytes is
// refused with ErrTooLarge.
func (c *Challenge) Append(dst []byte) ([]byte, error) {
	if err := fits16("domain", c.Domain); err != nil {
		return dst, err
	}
	dst = append(dst, c.Nonce[:]...)
	return appendString16(dst, c.Domain), nil
}

// ParseChallenge decodes a Challenge.
func ParseChallenge(p []byte) (Challenge, error) {
	r := newReader(p)
	var c Challenge
	copy(c.Nonce[:], r.take(NonceSize, "nonce"))
	c.Domain = r.string16("domain")
	return c, r.done("challenge")
}

// RegistrationRequest is the client's answer to a Challenge: its key, the
// id of the client process (so a reconnect replaces its own older link) and
// an Ed25519 signature over SignatureInput.
//
//	public key  [32]byte
//	instance    [16]byte
//	timestamp   int64, Unix milliseconds
//	signature   [64]byte
type RegistrationRequest struct {
	PublicKey [PublicKeySize]byte
	Instance  [InstanceSize]byte
	Timestamp int64
	Signature [SignatureSize]byte
}

const registrationSize = PublicKeySize + InstanceSize + 8 + SignatureSize

// Append appends q's encoding (always 120 bytes) to dst.
func (q *RegistrationRequest) Append(dst []byte) []byte {
	dst = append(dst, q.PublicKey[:]...)
	dst = append(dst, q.Instance[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(q.Timestamp))
	return append(dst, q.Signature[:]...)
}

// ParseRegistrationRequest decodes a RegistrationRequest. It checks the
// layout only; verifying the key and signature is the proxy's job.
func ParseRegistrationRequest(p []byte) (RegistrationRequest, error) {
	var q RegistrationRequest
	if len(p) != registrationSize {
		return q, fmt.Errorf("%w: registration of %d bytes, want %d", ErrMalformed, len(p), registrationSize)
	}
	n := copy(q.PublicKey[:], p)
	n += copy(q.Instance[:], p[n:])
	q.Timestamp = int64(binary.BigEndian.Uint64(p[n:]))
	copy(q.Signature[:], p[n+8:])
	return q, nil
}

// SignatureContext separates registration signatures from any other use of
// the same key.
const SignatureContext = "keyhole registration\x00"

// SignatureInput returns the exact bytes a RegistrationRequest signs:
//
//	"keyhole registration\x00"  (21 bytes)
//	version     uint8
//	domain      string16
//	nonce       [32]byte
//	timestamp   int64, Unix milliseconds
//	public key  [32]byte
//	instance    [16]byte
//
// The domain is the one the Challenge carried, at most 65,535 bytes (a DNS
// name is at most 253).
func SignatureInput(domain string, nonce [NonceSize]byte, q *RegistrationRequest) []byte {
	b := make([]byte, 0, len(SignatureContext)+1+2+len(domain)+NonceSize+8+PublicKeySize+InstanceSize)
	b = append(b, SignatureContext...)
	b = append(b, Version)
	b = appendString16(b, domain)
	b = append(b, nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(q.Timestamp))
	b = append(b, q.PublicKey[:]...)
	return append(b, q.Instance[:]...)
}

// RegistrationResponse tells a client its tunnel is up.
//
//	hostname  string16
//	url       string16, the public URL visitors use
//
// To a client that asked for link revision 2 or later (RevisionHeader on
// its WebSocket upgrade), the proxy appends:
//
//	revision  uint8, the link revision both sides now speak (2)
//	max body  uint64, the proxy's body and WebSocket message cap in bytes; 0 = no cap
//
// A client that did not ask gets the first two fields only (revision 1).
type RegistrationResponse struct {
	Hostname string
	URL      string
	Revision uint8  // 0 or 1: the fields after URL are absent
	MaxBody  uint64 // revision 2: the proxy's cap, 0 = none
}

// Append appends s's encoding to dst; a field over 65,535 bytes or a
// payload over MaxPayload is refused with ErrTooLarge.
func (s *RegistrationResponse) Append(dst []byte) ([]byte, error) {
	if err := fits16("hostname", s.Hostname); err != nil {
		return dst, err
	}
	if err := fits16("url", s.URL); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = appendString16(appendString16(dst, s.Hostname), s.URL)
	if s.Revision >= 2 {
		dst = append(dst, s.Revision)
		dst = binary.BigEndian.AppendUint64(dst, s.MaxBody)
	}
	return checkPayload("registration response", dst, start)
}

// ParseRegistrationResponse decodes a RegistrationResponse. A proxy never
// answers with a revision newer than the client asked for, so bytes after
// the fields this package knows are refused.
func ParseRegistrationResponse(p []byte) (RegistrationResponse, error) {
	r := newReader(p)
	s := RegistrationResponse{Hostname: r.string16("hostname"), URL: r.string16("url")}
	if r.err != nil || r.off == len(r.s) {
		return s, r.done("registration response")
	}
	s.Revision = uint8(r.u8("revision"))
	s.MaxBody = r.u64("max body")
	if r.err == nil && s.Revision < 2 {
		return RegistrationResponse{}, fmt.Errorf("%w: revision %d with revision 2 fields", ErrMalformed, s.Revision)
	}
	return s, r.done("registration response")
}

// Status is the payload of WSTeardown (a WebSocket close code and reason)
// and of Error (an HTTP status for the visitor and a message).
//
//	code    uint16
//	text    the rest of the payload, UTF-8, at most MaxChunk bytes
type Status struct {
	Code uint16
	Text string
}

// Append appends s's encoding to dst. A text over MaxChunk bytes is cut to
// MaxChunk bytes or a little less, so as not to split a UTF-8 sequence.
func (s *Status) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, s.Code)
	text := s.Text
	if len(text) > MaxChunk {
		n := MaxChunk
		for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(text[n]); i++ {
			n--
		}
		text = text[:n]
	}
	return append(dst, text...)
}

// ParseStatus decodes a Status. The text is not checked for valid UTF-8.
func ParseStatus(p []byte) (Status, error) {
	if len(p) < 2 {
		return Status{}, fmt.Errorf("%w: status of %d bytes", ErrMalformed, len(p))
	}
	if len(p)-2 > MaxChunk {
		return Status{}, fmt.Errorf("%w: status text of %d bytes, limit %d", ErrTooLarge, len(p)-2, MaxChunk)
	}
	return Status{Code: binary.BigEndian.Uint16(p), Text: string(p[2:])}, nil
}
