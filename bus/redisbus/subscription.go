package redisbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// warnEvery limits how often one subscription logs dropped messages.
const warnEvery = 10 * time.Second

// subscription is one node's subscription: a go-redis PubSub and the
// goroutine that feeds its messages to the handler. On a Cluster the
// PubSub is replaced by a new one when the channel's shard moves or fails
// (see shards.go); the one goroutine carries on with the new one's
// messages, so the handler still sees one message at a time.
type subscription struct {
	b       *Bus
	node    string
	channel string
	handle  func([]byte)

	mu     sync.Mutex    // protects ps, msgs, stale and closed
	ps     *redis.PubSub // the current PubSub
	msgs   <-chan any    // its messages
	stale  bool          // Redis unsubscribed it unasked: open it again
	closed bool          // Close has taken ps: open no other

	closing      atomic.Bool   // set when Close starts: deliver nothing more
	unsubscribed chan struct{} // closed by run when Redis confirms the unsubscribe
	done         chan struct{} // closed when run returns
	closeOnce    sync.Once

	// Owned by run.
	opener   *opener
	replay   replayFilter // the senders' windows and keys
	lastWarn time.Time
}

// subscribe subscribes to node's channel, waits for Redis to confirm, and
// starts the subscription's goroutine.
func (b *Bus) subscribe(node string, handle func([]byte)) (*subscription, error) {
	s := &subscription{
		b:            b,
		node:         node,
		channel:      b.channel(node),
		handle:       handle,
		unsubscribed: make(chan struct{}),
		done:         make(chan struct{}),
		opener:       newOpener(b.channel(node)),
	}
	ps, msgs, err := b.open(s.channel)
	if err != nil {
		return nil, err
	}
	s.ps, s.msgs = ps, msgs
	go s.run(msgs)
	return s, nil
}

// open subscribes a new PubSub to channel and waits for Redis to confirm.
func (b *Bus) open(channel string) (*redis.PubSub, <-chan any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	var ps *redis.PubSub
	if b.sharded {
		ps = b.client.SSubscribe(ctx, channel)
	} else {
		ps = b.client.Subscribe(ctx, channel)
	}
	// go-redis sends SUBSCRIBE without reading the answer (and drops a
	// send error); the confirmation is the first thing on the connection.
	reply, err := ps.ReceiveTimeout(ctx, b.timeout)
	if err != nil {
		_ = ps.Close()
		return nil, nil, err
	}
	if c, ok := reply.(*redis.Subscription); !ok || c.Channel != channel || !isSubscribe(c.Kind) {
		_ = ps.Close()
		return nil, nil, fmt.Errorf("unexpected reply to subscribe: %v", reply)
	}
	msgs := ps.ChannelWithSubscriptions(
		redis.WithChannelSize(b.buffer),
		// A stuck health-check ping holds the PubSub's lock, which Close
		// needs: keep it as short as any other call.
		redis.WithChannelPingTimeout(b.timeout),
		redis.WithChannelReconnectTimeout(b.timeout),
	)
	return ps, msgs, nil
}

// run hands messages to the handler until go-redis closes msgs, which it
// does once the PubSub is closed, and goes on with the messages of the
// PubSub that replaced it, if one did. After Close starts it keeps
// draining, so go-redis's own goroutine never waits on a full channel.
func (s *subscription) run(msgs <-chan any) {
	defer close(s.done)
	var unsubOnce sync.Once
	for {
		for m := range msgs {
			if s.closing.Load() {
				if c, ok := m.(*redis.Subscription); ok && isUnsubscribe(c.Kind) {
					unsubOnce.Do(func() { close(s.unsubscribed) })
				}
				if _, ok := m.(*redis.Message); ok {
					s.b.stats.discarded.Add(1)
				}
				continue
			}
			switch m := m.(type) {
			case *redis.Message:
				s.deliver(m)
			case *redis.Subscription:
				s.subscriptionChanged(m)
			}
		}
		s.mu.Lock()
		next := s.msgs
		s.mu.Unlock()
		if next == msgs {
			return // closed, not replaced
		}
		msgs = next
	}
}

// subscriptionChanged notes a change Redis or go-redis made on its own.
func (s *subscription) subscriptionChanged(m *redis.Subscription) {
	switch {
	case isSubscribe(m.Kind):
		// go-redis lost the connection and subscribed again on a new
		// one; what was published in between is gone.
		s.b.stats.resubscribed.Add(1)
		s.b.log.Warn("resubscribed after a lost connection; messages published meanwhile were lost", "node", s.node)
	case isUnsubscribe(m.Kind):
		// A Cluster node that lost the channel's slot unsubscribes its
		// sharded subscribers: subscribe again where the slot is now.
		s.mu.Lock()
		s.stale = true
		s.mu.Unlock()
		s.b.kickWatch()
	}
}

func (s *subscription) deliver(m *redis.Message) {
	now := time.Now()
	msg, err := s.open(m, now)
	switch {
	case err == nil:
		s.b.stats.delivered.Add(1)
		s.handle(msg)
		return
	case errors.Is(err, errStale):
		s.b.stats.stale.Add(1)
	case errors.Is(err, errReplayed):
		s.b.stats.replayed.Add(1)
	default:
		s.b.stats.forged.Add(1)
	}
	if now.Sub(s.lastWarn) >= warnEvery {
		s.lastWarn = now
		st := s.b.stats.snapshot()
		s.b.log.Warn("dropped a message that failed authentication", "node", s.node, "err", err,
			"forged", st.Forged, "stale", st.Stale, "replayed", st.Replayed)
	}
}

// open authenticates m and checks it against the replay windows. A key
// derived for an unknown sender is kept only once a message of that sender
// passes.
func (s *subscription) open(m *redis.Message, now time.Time) ([]byte, error) {
	if m.Channel != s.channel {
		return nil, errForged // cannot happen with one channel per PubSub; never deliver it
	}
	_, id, err := s.opener.load(m.Payload)
	if err != nil {
		return nil, err
	}
	gcm := s.replay.mac(s.b.key, id.sender)
	msg, err := s.opener.open(gcm, id, now)
	if err != nil {
		return nil, err
	}
	// Only an authentic, fresh message may touch the replay windows.
	if !s.replay.accept(id, gcm, now) {
		return nil, errReplayed
	}
	return msg, nil
}

// Close unsubscribes, waits for Redis to confirm (so a later Publish sees
// no subscriber), closes the PubSub and waits for the goroutine. It returns
// nil, also when called again.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.b.forget(s)
		s.closing.Store(true)
		s.mu.Lock()
		s.closed = true
		ps := s.ps
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.b.timeout)
		defer cancel()
		var err error
		if s.b.sharded {
			err = ps.SUnsubscribe(ctx, s.channel)
		} else {
			err = ps.Unsubscribe(ctx, s.channel)
		}
		if err == nil {
			select {
			case <-s.unsubscribed:
			case <-ctx.Done():
			}
		}
		_ = ps.Close()
		<-s.done
	})
	return nil
}

func isSubscribe(kind string) bool   { return kind == "subscribe" || kind == "ssubscribe" }
func isUnsubscribe(kind string) bool { return kind == "unsubscribe" || kind == "sunsubscribe" }
