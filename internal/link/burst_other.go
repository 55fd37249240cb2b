//go:build !linux

package link

import "errors"

// canBurst is false where a BurstReader cannot read the socket itself:
// it reads the connection as it is.
const canBurst = false

func readFD(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
