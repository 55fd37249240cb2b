package redisbus_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/bus"
	"keyhole/bus/redisbus"
	"keyhole/internal/redistest"
)

// shardRecovery bounds how long a subscription may stay off its slot's
// master after the slot moved: a few rounds of the one-second check.
const shardRecovery = 5 * time.Second

// TestClusterFailoverResubscribes moves the slot of a node's channel to
// its replica with CLUSTER FAILOVER (the old master stays up, as a
// replica, still holding the subscription), then kills the new master
// with SIGKILL. Both times the subscription follows the slot to its new
// master within seconds and messages reach the node again.
func TestClusterFailoverResubscribes(t *testing.T) {
	cl := redistest.StartReplicatedCluster(t)
	prefix := redistest.Prefix(t)
	pub, recv, got := heardPair(t, cl.NewClient(t), cl.NewClient(t), prefix)
	channel := prefix + ":node:n"

	_, promoted := cl.Failover(channel)
	start := time.Now()
	for subscribers(t, promoted, channel) < 1 {
		if time.Since(start) > shardRecovery {
			t.Fatalf("the slot's new master has no subscriber on %s %v after a manual failover", channel, shardRecovery)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("subscribed on the new master %v after the manual failover", time.Since(start))
	waitHeard(t, pub, got)
	resub := recv.Stats().Resubscribed

	promoted.Kill()
	killed := time.Now()
	for {
		if m, err := cl.MasterOf(channel); err == nil && m != promoted {
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatal("no replica took over within 20s of the master's SIGKILL")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("replica took over %v after the SIGKILL", time.Since(killed))
	t.Logf("heard again %v after the replica took over", waitHeard(t, pub, got))
	if st := recv.Stats(); st.Resubscribed <= resub {
		t.Errorf("after the kill: got Resubscribed %d, want more than %d", st.Resubscribed, resub)
	}
}

// heardPair makes a publishing Bus and a receiving one, subscribed as
// node "n", and waits until a message gets through.
func heardPair(t *testing.T, pubClient, recvClient redis.UniversalClient, prefix string) (pub, recv *redisbus.Bus, got chan []byte) {
	t.Helper()
	pub = newBus(t, pubClient, prefix, secret)
	recv = newBus(t, recvClient, prefix, secret)
	got = make(chan []byte, 100)
	sub, err := recv.Subscribe("n", func(m []byte) { got <- bytes.Clone(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	waitHeard(t, pub, got)
	return pub, recv, got
}

// subscribers asks s how many sharded subscribers channel has there.
func subscribers(t *testing.T, s *redistest.Server, channel string) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	n, err := c.PubSubShardNumSub(context.Background(), channel).Result()
	if err != nil {
		t.Fatalf("pubsub shardnumsub on %s: %v", s.Addr(), err)
	}
	return n[channel]
}

// waitHeard publishes to node "n" until a message arrives, within
// shardRecovery, and returns how long it took.
func waitHeard(t *testing.T, pub bus.Bus, got <-chan []byte) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < shardRecovery {
		err := pub.Publish(context.Background(), "n", []byte("again"))
		if err == nil {
			select {
			case m := <-got:
				if string(m) == "again" {
					return time.Since(start)
				}
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		last = err
		if !errors.Is(err, bus.ErrNoSubscriber) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("node n not reached within %v (last publish error: %v)", shardRecovery, last)
	return 0
}

// TestSentinelFailoverResubscribes fails a Sentinel's master over to its
// replica. go-redis moves its commands to the new master but leaves a
// PubSub on the old one, which is still up: the subscription must follow
// to the new master within seconds, and messages reach the node again.
func TestSentinelFailoverResubscribes(t *testing.T) {
	opts := redistest.SentinelOptions{Password: "master-" + t.Name(), SentinelPassword: "sentinel-" + t.Name()}
	s := redistest.StartSentinel(t, opts)
	client := func() redis.UniversalClient {
		c := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            redistest.SentinelMaster,
			SentinelAddrs:         []string{s.Sentinel},
			SentinelPassword:      opts.SentinelPassword,
			Password:              opts.Password,
			DialTimeout:           time.Second,
			ReadTimeout:           time.Second,
			WriteTimeout:          time.Second,
			ContextTimeoutEnabled: true,
		})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	prefix := redistest.Prefix(t)
	pub, recv, got := heardPair(t, client(), client(), prefix)
	channel := prefix + ":node:n"
	resub := recv.Stats().Resubscribed

	promoted := s.Failover()
	start := time.Now()
	c := redis.NewClient(&redis.Options{Addr: promoted, Password: opts.Password})
	defer c.Close()
	for {
		n, err := c.PubSubNumSub(context.Background(), channel).Result()
		if err == nil && n[channel] > 0 {
			break
		}
		if time.Since(start) > shardRecovery {
			t.Fatalf("the new master %s has no subscriber on %s %v after the failover (err %v)", promoted, channel, shardRecovery, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("subscribed on the new master %v after the failover", time.Since(start))
	t.Logf("heard again %v later", waitHeard(t, pub, got))
	if st := recv.Stats(); st.Resubscribed <= resub {
		t.Errorf("after the failover: got Resubscribed %d, want more than %d", st.Resubscribed, resub)
	}

	// The heartbeats follow too: both Buses subscribe to them on the new
	// master within a few heartbeats.
	heartbeat := prefix + ":heartbeat"
	for {
		n, err := c.PubSubNumSub(context.Background(), heartbeat).Result()
		if err == nil && n[heartbeat] == 2 {
			break
		}
		if time.Since(start) > 4*redisbus.DefaultHeartbeat+shardRecovery {
			t.Fatalf("the new master counts %d subscribers on %s %v after the failover (err %v), want 2", n[heartbeat], heartbeat, time.Since(start), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("both heartbeat subscriptions on the new master %v after the failover", time.Since(start))
}
