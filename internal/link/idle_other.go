//go:build !linux

package link

// canPeek is false where the socket cannot be peeked at: idle readers
// wait in the WebSocket reader.
const canPeek = false

func peekReady(uintptr) bool { return true }
