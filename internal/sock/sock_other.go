//go:build !linux

package sock

import "syscall"

// supported is false where the raw calls are not written: Wrap, Listener
// and Dialer then change nothing, and RawRead, RawWrite and RawPeek make
// Go's own calls.
const supported = false

func rawRead(uintptr, []byte) (int, syscall.Errno)            { return 0, syscall.ENOSYS }
func rawWrite(uintptr, []byte) (int, syscall.Errno)           { return 0, syscall.ENOSYS }
func rawWritev(uintptr, []syscall.Iovec) (int, syscall.Errno) { return 0, syscall.ENOSYS }
func iovec([]byte) syscall.Iovec                              { return syscall.Iovec{} }

// RawPeek is recv(MSG_PEEK|MSG_DONTWAIT) of up to len(p) bytes.
func RawPeek(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, err := syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, errno(err)
}

// RawRead is read(2) of fd into p.
func RawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errno(err)
}

// RawWrite is write(2) of p to fd.
func RawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errno(err)
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}
