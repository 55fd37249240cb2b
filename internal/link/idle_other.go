//go:build !linux

package link

import "errors"

// canPeek is false where the socket cannot be peeked at: idle readers
// wait in the WebSocket reader.
const canPeek = false

func peekReady(uintptr) bool { return true }

// canBurst is false where a BurstReader cannot read the socket itself:
// it reads the connection as it is.
const canBurst = false

func readFD(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
