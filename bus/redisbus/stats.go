package redisbus

import (
	"sync/atomic"

	"keyhole/bus"
)

// Stats counts what a Bus did since New. Every drop has a counter.
type Stats struct {
	Published     uint64 // publishes Redis handed to at least one subscriber
	NoSubscriber  uint64 // publishes refused with bus.ErrNoSubscriber
	PublishErrors uint64 // publishes that failed in Redis: down, timed out, refused
	Delivered     uint64 // messages handed to a handler
	Forged        uint64 // dropped: malformed, or a bad tag (wrong secret, replayed onto another channel)
	Stale         uint64 // dropped: authentic but timestamp more than MaxClockSkew away
	Replayed      uint64 // dropped: authentic and fresh, but its sender's counter was already seen or is below the replay window
	Discarded     uint64 // dropped: arrived while their subscription was closing
	Resubscribed  uint64 // subscriptions restored after a lost connection; messages published meanwhile were lost
	// HeartbeatsRefused counts other nodes' heartbeats that failed
	// authentication: another cluster secret, or a clock too far off.
	HeartbeatsRefused uint64
}

// Counters lists the Stats for metrics.
func (b *Bus) Counters() []bus.Counter {
	st := b.Stats()
	return []bus.Counter{
		{Name: "published", Value: st.Published},
		{Name: "no_subscriber", Value: st.NoSubscriber},
		{Name: "publish_errors", Value: st.PublishErrors},
		{Name: "delivered", Value: st.Delivered},
		{Name: "forged", Value: st.Forged},
		{Name: "stale", Value: st.Stale},
		{Name: "replayed", Value: st.Replayed},
		{Name: "discarded", Value: st.Discarded},
		{Name: "resubscribed", Value: st.Resubscribed},
		{Name: "heartbeats_refused", Value: st.HeartbeatsRefused},
	}
}

var _ bus.Counted = (*Bus)(nil)

// counters are the live, atomically updated Stats.
type counters struct {
	published, noSubscriber, publishErrors                      atomic.Uint64
	delivered, forged, stale, replayed, discarded, resubscribed atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Published:     c.published.Load(),
		NoSubscriber:  c.noSubscriber.Load(),
		PublishErrors: c.publishErrors.Load(),
		Delivered:     c.delivered.Load(),
		Forged:        c.forged.Load(),
		Stale:         c.stale.Load(),
		Replayed:      c.replayed.Load(),
		Discarded:     c.discarded.Load(),
		Resubscribed:  c.resubscribed.Load(),
	}
}
