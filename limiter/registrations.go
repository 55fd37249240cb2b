package limiter

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// Registrations limits client registrations, checked before a link's
// WebSocket upgrade so a refused one costs no signature check: a token
// bucket per source address, then one for all addresses together. An
// IPv6 source counts by its /64, the block one host usually holds.
type Registrations struct {
	perAddr *Tunnels
	global  *rate.Limiter // safe for concurrent use
}

// NewRegistrations returns limits of perAddr registrations a second per
// source address with a burst of addrBurst, and global a second in total
// with a burst of globalBurst. A rate of 0 is unlimited; a burst of 0 is
// two seconds' worth of its rate. Bursts are capped at 10,000. It panics
// on a rate CheckRate refuses or a negative burst.
func NewRegistrations(perAddr float64, addrBurst int, global float64, globalBurst int) *Registrations {
	return &Registrations{
		perAddr: newKeyed(perAddr, burstFor(perAddr, addrBurst)),
		global:  rate.NewLimiter(limitOf(global), burstFor(global, globalBurst)),
	}
}

// CheckBurst reports whether n is a usable burst for NewRegistrations.
func CheckBurst(n int) error {
	if n < 0 {
		return fmt.Errorf("burst %d: must not be negative", n)
	}
	return nil
}

func burstFor(perSecond float64, burst int) int {
	if err := CheckBurst(burst); err != nil {
		panic("limiter: " + err.Error())
	}
	if burst == 0 || limitOf(perSecond) == rate.Inf {
		return burstOf(perSecond)
	}
	return min(burst, maxBurst)
}

// Allow takes one registration token for addr at now. If the address or
// the proxy as a whole is over its rate it returns false and the time
// until a registration would pass, always positive, for Retry-After. A
// registration refused by the global limit has still used its address's
// token.
func (r *Registrations) Allow(addr netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if ok, wait := r.perAddr.Allow(addrKey(addr), now); !ok {
		return false, wait
	}
	res := r.global.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		return false, wait
	}
	return true, 0
}

// Addresses reports how many source addresses r currently remembers.
func (r *Registrations) Addresses() int { return r.perAddr.Len() }

// addrKey is the bucket of a source address: the address itself for
// IPv4, its /64 for IPv6.
func addrKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
