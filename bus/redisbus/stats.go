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
		{Name: "published", Help: "Messages Redis handed to at least one subscriber.", Value: st.Published},
		{Name: "no_subscriber", Help: "Publishes refused because no node listened on the channel.", Value: st.NoSubscriber},
		{Name: "publish_errors", Help: "Publishes that failed in Redis: down, timed out, refused.", Value: st.PublishErrors},
		{Name: "delivered", Help: "Messages handed to a handler.", Value: st.Delivered},
		{Name: "forged", Help: "Messages dropped as malformed or with a bad tag (wrong --cluster-secret, replayed onto another channel).", Value: st.Forged},
		{Name: "stale", Help: "Authentic messages dropped for a timestamp too far from this node's clock.", Value: st.Stale},
		{Name: "replayed", Help: "Authentic, fresh messages dropped as already seen.", Value: st.Replayed},
		{Name: "discarded", Help: "Messages dropped because their subscription was closing.", Value: st.Discarded},
		{Name: "resubscribed", Help: "Subscriptions restored after a lost connection; messages published meanwhile were lost.", Value: st.Resubscribed},
		{Name: "heartbeats_refused", Help: "Heartbeats of other nodes that failed authentication: a node with another --cluster-secret.", Value: st.HeartbeatsRefused},
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
