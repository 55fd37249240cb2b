package redisbus

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// On a Redis Cluster a node's channel lives on the master of its slot.
// When that master fails, a replica takes over within the cluster's node
// timeout, but go-redis reloads its slot map only on a MOVED reply or
// every minute, and until then the subscription keeps reconnecting to the
// dead master and publishes go there too. So a Bus on a Cluster reloads
// the slot map every shardCheck and after every failed publish, asks the
// master of each subscription's slot whether it has a subscriber on the
// channel (PUBSUB SHARDNUMSUB), and opens the subscription again when it
// has none, or when Redis unsubscribed it unasked (a master that lost the
// slot does that).
// A subscription opened again counts as resubscribed, since messages
// published meanwhile were lost.
const shardCheck = time.Second

// startShardWatch starts the goroutine that follows the Cluster's slots,
// when the client is a Cluster client.
func (b *Bus) startShardWatch() {
	b.kick = make(chan struct{}, 1)
	cc, ok := b.client.(*redis.ClusterClient)
	if !ok {
		return
	}
	b.watchers.Go(func() { b.watchShards(cc) })
}

// watchShards checks every subscription's shard every shardCheck, and at
// once when kicked, until Close.
func (b *Bus) watchShards(cc *redis.ClusterClient) {
	t := time.NewTicker(shardCheck)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case <-t.C:
		case <-b.kick:
		}
		for _, s := range b.subscriptions() {
			s.checkShard(cc)
		}
		// Lazy: the fresh map serves the next round (and every command
		// of the client meanwhile).
		cc.ReloadState(context.Background())
	}
}

// kickShards asks the watcher to reload the slot map and check the
// subscriptions now.
func (b *Bus) kickShards() {
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
	s.mu.Lock()
	stale := s.stale
	s.mu.Unlock()
	if !stale {
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

// reopen replaces the subscription's PubSub with a new one on the
// channel's current master. On failure it stays as it is, and the next
// check tries again.
func (s *subscription) reopen() {
	ps, msgs, err := s.b.open(s.channel)
	if err != nil {
		s.b.log.Warn("shard moved; subscribing on its new master failed, trying again", "node", s.node, "err", err)
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
	_ = old.Close() // its shard no longer holds the channel; run moves on to msgs
	s.b.stats.resubscribed.Add(1)
	s.b.log.Warn("shard moved; subscribed again on its new master, messages published meanwhile were lost", "node", s.node)
}
