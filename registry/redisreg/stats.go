package redisreg

import "sync/atomic"

// Stats counts what a Registry did since New.
type Stats struct {
	Renewals       uint64 // renewal rounds run
	RenewErrors    uint64 // renewal rounds that failed; their routes lapse after TTL unless a later one succeeds
	AnnounceErrors uint64 // announcements kept in memory but not written at once
	WithdrawErrors uint64 // withdrawals forgotten but not removed at once; they expire after TTL
	LookupErrors   uint64 // lookups that failed: Redis down, timed out, refused
	ExpiredSeen    uint64 // expired entries of dead nodes that lookups skipped and removed
}

// counters are the live, atomically updated Stats.
type counters struct {
	renewals, renewErrors, announceErrors     atomic.Uint64
	withdrawErrors, lookupErrors, expiredSeen atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Renewals:       c.renewals.Load(),
		RenewErrors:    c.renewErrors.Load(),
		AnnounceErrors: c.announceErrors.Load(),
		WithdrawErrors: c.withdrawErrors.Load(),
		LookupErrors:   c.lookupErrors.Load(),
		ExpiredSeen:    c.expiredSeen.Load(),
	}
}
