package link

import "encoding/binary"

// The link writes its WebSocket messages itself (RFC 6455 section 5.2):
// each is one final binary frame, masked when the client sends it. That
// lets a frame go out straight from its pooled buffer and several go out
// in one system call; reading stays with the WebSocket library.

// wsHeader writes the header of a final binary frame with an n-byte
// payload into h and returns its length.
func wsHeader(h []byte, n int, mask bool, key uint32) int {
	h[0] = 0x80 | 0x2 // FIN, binary
	var maskBit byte
	if mask {
		maskBit = 0x80
	}
	i := 2
	switch {
	case n < 126:
		h[1] = maskBit | byte(n)
	case n <= 0xffff:
		h[1] = maskBit | 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		i = 4
	default:
		h[1] = maskBit | 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		i = 10
	}
	if mask {
		binary.BigEndian.PutUint32(h[i:], key)
		i += 4
	}
	return i
}

// maskBytes XORs b with the 4-byte masking key, 32 bytes a step; the
// reslicing lets the compiler drop bounds checks.
func maskBytes(b []byte, key uint32) {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], key)
	k64 := uint64(binary.LittleEndian.Uint32(k[:])) * 0x100000001
	for len(b) >= 32 {
		_ = b[31]
		binary.LittleEndian.PutUint64(b[0:], binary.LittleEndian.Uint64(b[0:])^k64)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^k64)
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])^k64)
		binary.LittleEndian.PutUint64(b[24:], binary.LittleEndian.Uint64(b[24:])^k64)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	// What is left starts on a multiple of 4 bytes, so at the key's start.
	for i := range b {
		b[i] ^= k[i&3]
	}
}
