package redisreg

import (
	"sync/atomic"

	"keyhole/registry"
)

// Stats counts what a Registry did since New.
type Stats struct {
	Renewals       uint64 // renewal rounds run
	RenewErrors    uint64 // renewal rounds that failed; the leases lapse after TTL unless a later one succeeds
	Rewrites       uint64 // leases taken again (lost, or after a failed write) with every route written again
	AnnounceErrors uint64 // announcements kept in memory but not written at once
	WithdrawErrors uint64 // withdrawals forgotten but not removed at once; void after the next renewal
	LookupErrors   uint64 // lookups that failed: Redis down, timed out, refused
	ExpiredSeen    uint64 // routes of dead nodes that lookups skipped and removed
	Swept          uint64 // routes of dead nodes removed by the sweep
}

// Counters lists the Stats for metrics.
func (r *Registry) Counters() []registry.Counter {
	st := r.Stats()
	return []registry.Counter{
		{Name: "renewals", Help: "Renewal rounds of this node's routes.", Value: st.Renewals},
		{Name: "renew_errors", Help: "Renewal rounds that failed; their routes lapse after their TTL unless a later one succeeds.", Value: st.RenewErrors},
		{Name: "announce_errors", Help: "Announcements kept in memory but not written to Redis at once.", Value: st.AnnounceErrors},
		{Name: "withdraw_errors", Help: "Withdrawals not removed from Redis at once; they expire after their TTL.", Value: st.WithdrawErrors},
		{Name: "lookup_errors", Help: "Lookups that failed: Redis down, timed out, refused.", Value: st.LookupErrors},
		{Name: "expired_seen", Help: "Expired entries of dead nodes that lookups skipped and removed.", Value: st.ExpiredSeen},
		{Name: "rewrites", Help: "Times this node took a new lease and wrote all its routes again: Redis had lost them, or the node was cut off for longer than the TTL.", Value: st.Rewrites},
		{Name: "swept", Help: "Routes of dead nodes removed by the periodic sweep.", Value: st.Swept},
	}
}

var _ registry.Counted = (*Registry)(nil)

// counters are the live, atomically updated Stats.
type counters struct {
	renewals, renewErrors, rewrites, announceErrors atomic.Uint64
	withdrawErrors, lookupErrors, expiredSeen       atomic.Uint64
	swept                                           atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Renewals:       c.renewals.Load(),
		RenewErrors:    c.renewErrors.Load(),
		Rewrites:       c.rewrites.Load(),
		AnnounceErrors: c.announceErrors.Load(),
		WithdrawErrors: c.withdrawErrors.Load(),
		LookupErrors:   c.lookupErrors.Load(),
		ExpiredSeen:    c.expiredSeen.Load(),
		Swept:          c.swept.Load(),
	}
}
