package messages

import "errors"

var (
	// ErrMalformed wraps every decoding failure caused by bad input.
	ErrMalformed = errors.New("malformed frame")
	// ErrTooLarge means a frame or one of its fields is over its cap.
	ErrTooLarge = errors.New("frame too large")
	// ErrVersion means the peer speaks another protocol version.
	ErrVersion = errors.New("unsupported protocol version")
)
