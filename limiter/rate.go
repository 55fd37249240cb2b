package limiter

import (
	"fmt"
	"math"

	"golang.org/x/time/rate"
)

// maxBurst caps the burst of every limiter in the package. A rate so high
// that two seconds of it exceed maxBurst is effectively a throughput cap; a
// larger burst would only let a peer queue more work at once.
const maxBurst = 10_000

// CheckRate reports whether perSecond is a usable rate for NewMessages or
// NewTunnels: 0 (unlimited) or positive, including +Inf (also unlimited).
// Commands should call it on flag values; the constructors panic on what it
// refuses.
func CheckRate(perSecond float64) error {
	if perSecond < 0 || math.IsNaN(perSecond) {
		return fmt.Errorf("rate %v per second: %w", perSecond, ErrInvalidRate)
	}
	return nil
}

// limitOf converts a per-second rate into a rate.Limit, mapping 0 and +Inf to
// rate.Inf. It panics on a rate CheckRate refuses.
func limitOf(perSecond float64) rate.Limit {
	if err := CheckRate(perSecond); err != nil {
		panic("limiter: " + err.Error())
	}
	if perSecond == 0 || math.IsInf(perSecond, 1) {
		return rate.Inf
	}
	return rate.Limit(perSecond)
}

// burstOf is two seconds' worth of perSecond, at least 1 and at most
// maxBurst; 1 for an unlimited rate, where rate.Limiter ignores the burst.
func burstOf(perSecond float64) int {
	if limitOf(perSecond) == rate.Inf {
		return 1
	}
	b := math.Ceil(2 * perSecond)
	switch {
	case !(b >= 1): // also catches NaN
		return 1
	case b > maxBurst:
		return maxBurst
	}
	return int(b)
}

// NewMessages returns the limiter for the messages one client connection
// sends: perSecond messages a second with a burst of two seconds' worth (at
// least 1, at most 10,000). perSecond 0 means unlimited. The caller calls
// Wait before handling each message, so a client that sends too fast is
// slowed down rather than disconnected. It panics if CheckRate(perSecond)
// fails.
func NewMessages(perSecond float64) *rate.Limiter {
	return rate.NewLimiter(limitOf(perSecond), burstOf(perSecond))
}
