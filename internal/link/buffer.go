package link

import (
	"sync"

	"keyhole/messages"
)

// headroom is space kept in front of a pooled buffer's frame for the
// WebSocket header (at most 14 bytes), so a frame goes out in one write
// without a copy.
const headroom = 14

// Buffer holds one encoded frame. Buffers come from a pool and are large
// enough for any frame, so a sender reads a body chunk straight into
// B[messages.HeaderSize:] and a receiver reads a whole frame without
// growing anything. Whoever holds a Buffer frees it exactly once.
type Buffer struct {
	B   []byte
	raw []byte // B's backing array from its start, headroom included; nil if none
}

var pool = sync.Pool{New: func() any {
	raw := make([]byte, headroom+messages.MaxFrame)
	return &Buffer{raw: raw, B: raw[headroom:headroom]}
}}

// NewBuffer returns an empty pooled buffer.
func NewBuffer() *Buffer {
	b := pool.Get().(*Buffer)
	b.B = b.raw[headroom:headroom]
	return b
}

// Free returns b to the pool if it came from there. b must not be used
// afterwards.
func (b *Buffer) Free() {
	if b == nil || b.raw == nil || cap(b.B) != messages.MaxFrame {
		return
	}
	pool.Put(b)
}

// Frame encodes a frame with the given payload. Small frames (credit,
// errors, registration) get a buffer of their own size, so they never pin
// a pooled one.
func Frame(t messages.Type, flags messages.Flags, id messages.ID, payload []byte) *Buffer {
	var b *Buffer
	if n := messages.HeaderSize + len(payload); n <= copyBelow {
		raw := make([]byte, headroom, headroom+n)
		b = &Buffer{raw: raw, B: raw[headroom:headroom]}
	} else {
		b = NewBuffer()
	}
	b.B = messages.AppendHeader(b.B, t, flags, id)
	b.B = append(b.B, payload...)
	return b
}

// Chunk returns a buffer with room for a frame header and a MaxChunk
// payload; the caller fills Payload() and then calls Seal.
func Chunk() *Buffer {
	b := NewBuffer()
	b.B = b.B[:messages.HeaderSize+messages.MaxChunk]
	return b
}

// Payload is the space after the header of a Chunk buffer.
func (b *Buffer) Payload() []byte { return b.B[messages.HeaderSize:] }

// Seal writes the header in front of the first n payload bytes.
func (b *Buffer) Seal(t messages.Type, flags messages.Flags, id messages.ID, n int) {
	messages.PutHeader(b.B, t, flags, id)
	b.B = b.B[:messages.HeaderSize+n]
}

// wire appends b to dst as one binary WebSocket message: a header written
// into the headroom, then the frame, masked in place when mask is set (a
// client's messages). Buffers without headroom get a separate header.
func (b *Buffer) wire(dst [][]byte, mask bool, key uint32) [][]byte {
	n := len(b.B)
	var h [headroom]byte
	hl := wsHeader(h[:], n, mask, key)
	if mask {
		maskBytes(b.B, key)
	}
	if b.raw != nil { // pooled: B starts right after the headroom
		start := headroom - hl
		copy(b.raw[start:headroom], h[:hl])
		return append(dst, b.raw[start:headroom+n])
	}
	return append(dst, append([]byte(nil), h[:hl]...), b.B)
}

// FreeAll frees every buffer of bs.
func FreeAll(bs []*Buffer) {
	for _, b := range bs {
		b.Free()
	}
}
