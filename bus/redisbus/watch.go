package redisbus

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// A subscription can sit where publishes no longer arrive while its
// connection stays healthy, so go-redis sees nothing to reconnect:
//
//   - On a Redis Cluster a node's channel lives on the master of its slot.
//     When that master fails, a replica takes over within the cluster's
//     node timeout, but go-redis reloads its slot map only on a MOVED reply
//     or every minute, and until then the subscription keeps reconnecting
//     to the dead master and publishes go there too.
//   - With Sentinel, go-redis moves its command connections to the new
//     master at a failover, but not a PubSub: that stays on the old
//     master, which is still up (later a replica), while publishes go to
//     the new one and report no subscriber.
//
// So a Bus checks every watchInterval, and at once when kicked, that the
// master publishes go to counts a subscriber on each of its channels
// (PUBSUB SHARDNUMSUB on the slot's master of a Cluster, after reloading
// the slot map; PUBSUB NUMSUB, all channels in one call, otherwise), and
// opens a subscription again when it has none, or when Redis unsubscribed
// it unasked (a Cluster master that lost the slot does that). A
// subscription opened again counts as resubscribed, since messages
// published meanwhile were lost.
const watchInterval = time.Second

// startWatch starts the goroutine that keeps the subscriptions where
// publishes go.
func (b *Bus) startWatch() {
	b.kick = make(chan struct{}, 1)
	b.watchers.Go(b.watch)
}

// watch checks the subscriptions every watchInterval, and at once when
// kicked, until Close.
func (b *Bus) watch() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	cc, cluster := b.client.(*redis.ClusterClient)
	for {
		select {
		case <-b.quit:
			return
		case <-t.C:
		case <-b.kick:
		}
		subs := b.subscriptions()
		if !cluster {
			b.checkMaster(subs)
			continue
		}
		for _, s := range subs {
			s.checkShard(cc)
		}
		// Lazy: the fresh map serves the next round (and every command
		// of the client meanwhile).
		cc.ReloadState(context.Background())
	}
}

// kick asks the watcher to check the subscriptions now (and, on a
// Cluster, to reload the slot map).
func (b *Bus) kickWatch() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// reloadShards reloads a Cluster client's slot map, after a failure that
// may mean it is out of date.
func (b *Bus) reloadShards() {
	if cc, ok := b.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

func (b *Bus) subscriptions() []*subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	subs := make([]*subscription, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	return subs
}

// checkShard opens the subscription again when the master of its slot
// has no subscriber on the channel (the slot moved to another master, or
// the subscription's connection is stuck on a dead one), or when Redis
// unsubscribed it. A master it cannot ask is left to the next round, after
// the slot map's reload.
func (s *subscription) checkShard(cc *redis.ClusterClient) {
	if !s.isStale() {
		ctx, cancel := context.WithTimeout(context.Background(), s.b.timeout)
		defer cancel()
		master, err := cc.MasterForKey(ctx, s.channel)
		if err != nil {
			return
		}
		n, err := master.PubSubShardNumSub(ctx, s.channel).Result()
		if err != nil || n[s.channel] > 0 {
			return
		}
	}
	s.reopen()
}

// checkMaster opens again the subscriptions that the master publishes go
// to does not count, or that Redis unsubscribed, and has the heartbeats
// subscribe again when the master does not count their subscription: one
// PUBSUB NUMSUB for all. A master it cannot ask is left to the next round.
func (b *Bus) checkMaster(subs []*subscription) {
	channels := make([]string, 0, len(subs)+1)
	for _, s := range subs {
		channels = append(channels, s.channel)
	}
	if b.hb.mark != "" {
		channels = append(channels, b.hb.mark)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	n, err := b.client.PubSubNumSub(ctx, channels...).Result()
	if err != nil {
		return
	}
	for _, s := range subs {
		if n[s.channel] == 0 || s.isStale() {
			s.reopen()
		}
	}
	if b.hb.mark != "" && n[b.hb.mark] == 0 {
		select {
		case b.hb.moved <- struct{}{}:
		default:
		}
	}
}

func (s *subscription) isStale() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stale
}

// reopen replaces the subscription's PubSub with a new one on the
// channel's current master. On failure it stays as it is, and the next
// check tries again.
func (s *subscription) reopen() {
	ps, msgs, err := s.b.open(s.channel)
	if err != nil {
		s.b.log.Warn("subscription not where publishes go; subscribing again failed, trying again", "node", s.node, "err", err)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ps.Close()
		return
	}
	old := s.ps
	s.ps, s.msgs, s.stale = ps, msgs, false
	s.mu.Unlock()
	_ = old.Close() // publishes no longer reach it; run moves on to msgs
	s.b.stats.resubscribed.Add(1)
	s.b.log.Warn("subscription was not where publishes go (a failover?); subscribed again, messages published meanwhile were lost", "node", s.node)
}
