package limiter

import "errors"

var (
	// ErrBodyTooLarge means a body is, or declares itself, over its byte cap.
	ErrBodyTooLarge = errors.New("body too large")
	// ErrInvalidRate means a rate is negative or NaN.
	ErrInvalidRate = errors.New("invalid rate")
)
