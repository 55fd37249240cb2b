package messages

import (
	"encoding/binary"
	"fmt"
	"math"
)

// appendString16 appends a string with a 2-byte big-endian length prefix.
// Callers check lengths with fits16 first; encoders never truncate.
func appendString16(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// reader decodes a payload. All its strings are substrings of one string
// converted from the payload once, so a head costs one allocation for its
// text however many fields it has. The first failure sticks.
type reader struct {
	s   string
	off int
	err error
}

func newReader(p []byte) *reader { return &reader{s: string(p)} }

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s at byte %d", ErrMalformed, what, r.off)
	}
}

func (r *reader) take(n int, what string) string {
	if r.err != nil || n < 0 || n > len(r.s)-r.off {
		r.fail(what)
		return ""
	}
	s := r.s[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8(what string) int {
	b := r.take(1, what)
	if len(b) < 1 {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16(what string) int {
	b := r.take(2, what)
	if len(b) < 2 {
		return 0
	}
	return int(b[0])<<8 | int(b[1])
}

func (r *reader) u64(what string) uint64 {
	b := r.take(8, what)
	if len(b) < 8 {
		return 0
	}
	var v uint64
	for i := 0; i < 8; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func (r *reader) string16(what string) string { return r.take(r.u16(what), what) }

// done reports the first error, or an error if bytes are left over.
func (r *reader) done(what string) error {
	if r.err == nil && r.off != len(r.s) {
		r.err = fmt.Errorf("%w: %d bytes after the end of %s", ErrMalformed, len(r.s)-r.off, what)
	}
	return r.err
}

func fits16(what, s string) error {
	if len(s) > math.MaxUint16 {
		return fmt.Errorf("%w: %s of %d bytes", ErrTooLarge, what, len(s))
	}
	return nil
}

// checkPayload refuses an encoded payload over MaxPayload.
func checkPayload(what string, dst []byte, start int) ([]byte, error) {
	if len(dst)-start > MaxPayload {
		return dst[:start], fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, what, len(dst)-start, MaxPayload)
	}
	return dst, nil
}
