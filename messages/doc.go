// Package messages is keyhole's wire format: the frames a client and a proxy
// exchange over their WebSocket, and that proxy nodes pass to each other over
// the bus.
//
// Every frame is one binary WebSocket message: a fixed 20-byte header
// (version, type, flags, stream id) followed by a payload whose layout depends
// on the type. Bodies travel as raw Data frames of at most MaxChunk bytes
// after their head. Decoding never panics, never allocates more than the
// frame it was given allows, and refuses anything malformed with an error
// wrapping ErrMalformed. PROTOCOL.md at the repository root is the full
// specification.
//
// The package has no sockets and no goroutines.
package messages
