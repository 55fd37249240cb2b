package link

import "syscall"

// canBurst says a BurstReader can read the socket itself here.
const canBurst = true

func readFD(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}
