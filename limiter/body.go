package limiter

import (
	"fmt"
	"io"
	"math"
)

// DefaultMaxBody is the default cap, in bytes, on a request or response body.
const DefaultMaxBody = 512000

// CheckLength returns an error wrapping ErrBodyTooLarge if contentLength, a
// body's declared length, is over max, so that a caller can refuse the body
// before reading any of it. An unknown length (negative, as in
// http.Request.ContentLength) passes; cap such a body with NewCappedReader.
// A negative max is treated as 0.
func CheckLength(contentLength, max int64) error {
	max = clampMax(max)
	if contentLength > max {
		return fmt.Errorf("declared length %d over cap %d: %w", contentLength, max, ErrBodyTooLarge)
	}
	return nil
}

// CappedReader passes through the first max bytes of a reader and fails with
// ErrBodyTooLarge as soon as the reader yields one more. It reads at most
// max+1 bytes from its source, so it detects an overflow without consuming
// any further. Once it has returned an error it returns that error again.
// It is not safe for concurrent use, like most readers.
type CappedReader struct {
	r   io.Reader
	max int64
	n   int64 // bytes returned to the caller, at most max
	err error // sticky ErrBodyTooLarge
}

// NewCappedReader returns a reader of r capped at max bytes. A negative max
// is treated as 0.
func NewCappedReader(r io.Reader, max int64) *CappedReader {
	return &CappedReader{r: r, max: clampMax(max)}
}

// Read implements io.Reader. The call that sees byte max+1 returns the bytes
// up to the cap together with an error wrapping ErrBodyTooLarge.
func (c *CappedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// One byte past the cap is enough to tell a body that ends at max from
	// one that goes on.
	if room := c.max - c.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	k, err := c.r.Read(p)
	if c.n+int64(k) > c.max {
		k = int(c.max - c.n)
		c.n = c.max
		c.err = fmt.Errorf("body over cap %d: %w", c.max, ErrBodyTooLarge)
		return k, c.err
	}
	c.n += int64(k)
	return k, err
}

// N reports how many bytes Read has returned so far; it never exceeds max.
func (c *CappedReader) N() int64 {
	return c.n
}

// clampMax keeps max in [0, MaxInt64-1] so that max+1 never overflows.
func clampMax(n int64) int64 {
	return min(max(n, 0), math.MaxInt64-1)
}
