package limiter

import (
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// numShards splits Tunnels' map so that neither the read lock of the hot
	// path nor the write lock of an insert is shared by every hostname.
	numShards = 16
	// maxLabels bounds how many hostnames Tunnels remembers, whatever the
	// clock says. Past it, limiters that are not yet full are forgotten too,
	// which grants those hostnames one fresh burst: rates go slightly
	// approximate under extreme cardinality, memory never grows.
	maxLabels      = 1 << 16
	maxShardLabels = maxLabels / numShards
	// Sweeps run at most once per fill time, clamped to these bounds.
	minSweepEvery = time.Second
	maxSweepEvery = time.Hour
)

// Tunnels limits visitor requests per hostname label: perSecond requests a
// second with a burst of two seconds' worth (at least 1, at most 10,000).
// Registrations uses the same per-key machinery for source addresses.
//
// It forgets a label's limiter once the limiter has refilled completely,
// which loses nothing because a new limiter starts full. It is safe for
// concurrent use and starts no goroutines: sweeps run inside Allow when a
// new label arrives.
type Tunnels struct {
	limit      rate.Limit
	burst      int
	sweepEvery time.Duration
	seed       maphash.Seed
	shards     [numShards]shard
}

type shard struct {
	// mu protects lims and nextSweep. Allow holds it shared while it takes a
	// token, so a sweep, which holds it exclusively, never forgets a limiter
	// in use.
	mu        sync.RWMutex
	lims      map[string]*rate.Limiter
	nextSweep time.Time
	_         [64]byte // keep neighbouring shards' locks off one cache line
}

// NewTunnels returns a per-hostname limiter of perSecond requests a second.
// perSecond 0 means unlimited: Allow always succeeds and remembers nothing.
// It panics if CheckRate(perSecond) fails.
func NewTunnels(perSecond float64) *Tunnels {
	return newKeyed(perSecond, burstOf(perSecond))
}

// newKeyed returns a Tunnels of perSecond events a second per key with
// the given burst: Registrations keys it by source address.
func newKeyed(perSecond float64, burst int) *Tunnels {
	t := &Tunnels{
		limit: limitOf(perSecond),
		burst: burst,
		seed:  maphash.MakeSeed(),
	}
	if t.limit == rate.Inf {
		return t
	}
	fill := float64(t.burst) / float64(t.limit) * float64(time.Second)
	t.sweepEvery = time.Duration(min(max(fill, float64(minSweepEvery)), float64(maxSweepEvery)))
	for i := range t.shards {
		t.shards[i].lims = make(map[string]*rate.Limiter)
	}
	return t
}

// Allow takes one request token for label at now. If none is available it
// returns false and the time until one will be, always positive; a caller
// answering 429 rounds it up to whole seconds, at least 1, for Retry-After.
func (t *Tunnels) Allow(label string, now time.Time) (ok bool, retryAfter time.Duration) {
	if t.limit == rate.Inf {
		return true, 0
	}
	s := &t.shards[maphash.String(t.seed, label)%numShards]
	s.mu.RLock()
	if lim := s.lims[label]; lim != nil {
		ok, retryAfter = t.take(lim, now)
		s.mu.RUnlock()
		return ok, retryAfter
	}
	s.mu.RUnlock()
	return t.allowNew(s, label, now)
}

// allowNew is Allow's slow path for a label the shard does not hold yet.
func (t *Tunnels) allowNew(s *shard, label string, now time.Time) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lim := s.lims[label]
	if lim == nil {
		s.makeRoom(now, t.sweepEvery, t.burst)
		lim = rate.NewLimiter(t.limit, t.burst)
		// Clone: label may be a slice of a larger string, such as a Host
		// header, that the map must not keep alive.
		s.lims[strings.Clone(label)] = lim
	}
	return t.take(lim, now)
}

// take takes one token from lim, or reports how long until one is there.
func (t *Tunnels) take(lim *rate.Limiter, now time.Time) (bool, time.Duration) {
	if lim.AllowN(now, 1) {
		return true, 0
	}
	wait := math.Ceil((1 - lim.TokensAt(now)) / float64(t.limit) * float64(time.Second))
	switch {
	case !(wait >= 1): // a concurrent caller with a later now refilled it
		return false, time.Nanosecond
	case wait >= math.MaxInt64:
		return false, math.MaxInt64
	}
	return false, time.Duration(wait)
}

// makeRoom runs before an insert. Once per sweepEvery, or whenever the shard
// is at its cap, it forgets every limiter that is full again; if the shard
// is still at its cap it forgets arbitrary ones down to three quarters of it,
// so a flood of new labels costs amortised constant time per insert.
func (s *shard) makeRoom(now time.Time, sweepEvery time.Duration, burst int) {
	if now.Before(s.nextSweep) && len(s.lims) < maxShardLabels {
		return
	}
	for label, lim := range s.lims {
		if lim.TokensAt(now) >= float64(burst) {
			delete(s.lims, label)
		}
	}
	s.nextSweep = now.Add(sweepEvery)
	if len(s.lims) < maxShardLabels {
		return
	}
	for label := range s.lims {
		if len(s.lims) < maxShardLabels*3/4 {
			break
		}
		delete(s.lims, label)
	}
}

// Len reports how many hostname limiters t currently remembers.
func (t *Tunnels) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.lims)
		s.mu.RUnlock()
	}
	return n
}
