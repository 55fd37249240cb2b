package link

import (
	"syscall"

	"keyhole/internal/sock"
)

// peekReady is the RawConn.Read callback of waitReadable: done once the
// socket has a byte to read, an end or an error, without taking any.
// canPeek says peekReady works here.
const canPeek = true

func peekReady(fd uintptr) bool {
	var b [1]byte
	_, e := sock.RawPeek(fd, b[:])
	return e != syscall.EAGAIN && e != syscall.EINTR
}
