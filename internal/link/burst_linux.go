package link

import "keyhole/internal/sock"

// canBurst says a BurstReader can read the socket itself here.
const canBurst = true

func readFD(fd uintptr, p []byte) (int, error) {
	n, errno := sock.RawRead(fd, p)
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}
