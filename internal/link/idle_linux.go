package link

import (
	"syscall"
	"unsafe"
)

// peekReady is the RawConn.Read callback of waitReadable: done once the
// socket has a byte to read, an end or an error, without taking any.
// canPeek says peekReady works here.
const canPeek = true

func peekReady(fd uintptr) bool {
	var b [1]byte
	_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e != syscall.EAGAIN && e != syscall.EINTR
}
