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
// the slot map every shardCheck and after every failed publish, and opens
// a subscription again on the new master when its slot has moved, or when
// Redis unsubscribed it unasked (a master that lost the slot does that).
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
			s.checkShard()
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

// shardMaster returns the address of the master that holds channel's
// slot, as the client's slot map has it; "" when not on a Cluster or not
// known.
func (b *Bus) shardMaster(channel string) string {
	cc, ok := b.client.(*redis.ClusterClient)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	c, err := cc.MasterForKey(ctx, channel)
	if err != nil {
		return ""
	}
	return c.Options().Addr
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

// checkShard opens the subscription again when its slot's master is not
// the one it was opened on, or Redis unsubscribed it.
func (s *subscription) checkShard() {
	addr := s.b.shardMaster(s.channel)
	s.mu.Lock()
	moved := addr != "" && addr != s.addr
	stale := s.stale
	s.mu.Unlock()
	if moved || stale {
		s.reopen(addr)
	}
}

// reopen replaces the subscription's PubSub with a new one on the
// channel's current master. On failure it stays as it is, and the next
// check tries again.
func (s *subscription) reopen(addr string) {
	ps, msgs, err := s.b.open(s.channel)
	if err != nil {
		s.b.log.Warn("shard moved; subscribing on its new master failed, trying again", "node", s.node, "master", addr, "err", err)
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
	if addr != "" {
		s.addr = addr
	}
	s.mu.Unlock()
	_ = old.Close() // its shard no longer holds the channel; run moves on to msgs
	s.b.stats.resubscribed.Add(1)
	s.b.log.Warn("shard moved; subscribed again on its new master, messages published meanwhile were lost", "node", s.node, "master", addr)
}
