package redisbus

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Heartbeats. Every Bus publishes, every Options.Heartbeat, a sealed
// message on the shared channel "<prefix>:heartbeat" that names the nodes
// it subscribes (each a uint8 length and the name), and listens on that
// channel. So each Bus learns which nodes are on the Redis (Nodes), and a
// node whose cluster secret differs from the others' learns it: it sees
// heartbeats whose tag fails. When it sees such heartbeats and none that
// authenticates, Ready says "cluster secret mismatch", and Publish to a
// node named only in heartbeats that fail refuses at once with
// ErrSecretMismatch instead of publishing messages the other end drops.
// A heartbeat counts for heartbeatWindow intervals.
const (
	DefaultHeartbeat = 2 * time.Second
	heartbeatWindow  = 3
)

// ErrSecretMismatch means the node published to, or every other node,
// seals its messages with another cluster secret.
var ErrSecretMismatch = errors.New("cluster secret mismatch")

// heartbeats is a Bus's heartbeat publisher and listener.
type heartbeats struct {
	b        *Bus
	channel  string
	mark     string        // a channel of this Bus alone, on the heartbeat subscription; "" on a Cluster
	moved    chan struct{} // the watcher found mark without a subscriber: subscribe again
	interval time.Duration
	refused  atomic.Uint64                  // heartbeats that failed authentication
	bad      atomic.Pointer[map[string]int] // nodes named only in heartbeats that fail; nil when none

	mu       sync.Mutex         // protects peers, others and reported
	peers    map[senderID]heard // heartbeats that authenticate, with their senders' keys
	others   map[senderID]heard // heartbeats that fail authentication
	reported string             // the state last logged

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// heard is the last heartbeat of one sender.
type heard struct {
	nodes  []string
	at     time.Time
	reason string      // why it failed, for others
	gcm    cipher.AEAD // the sender's key, for peers: derived once while it beats
}

func (b *Bus) startHeartbeats(interval time.Duration) {
	h := &heartbeats{
		b:        b,
		channel:  b.prefix + ":heartbeat",
		moved:    make(chan struct{}, 1),
		interval: interval,
		peers:    make(map[senderID]heard),
		others:   make(map[senderID]heard),
		stop:     make(chan struct{}),
	}
	if !b.sharded {
		// The heartbeat channel is shared, so a count of its subscribers
		// cannot tell whether this Bus's is among them; one on a channel
		// of its own, on the same connection, can (watch.go). On a
		// Cluster the two could live on different shards.
		h.mark = fmt.Sprintf("%s:heartbeat:%x", b.prefix, b.sender[:])
	}
	b.hb = h
	ps := h.subscribe()
	h.wg.Add(1)
	go h.beat(ps)
}

// subscribe opens a subscription to the heartbeat channel and starts its
// listener, which ends when the subscription is closed.
func (h *heartbeats) subscribe() *redis.PubSub {
	var ps *redis.PubSub
	ctx, cancel := context.WithTimeout(context.Background(), h.b.timeout)
	defer cancel()
	// With Redis down this fails quietly, and go-redis subscribes once
	// its health check reconnects.
	switch {
	case h.b.sharded:
		ps = h.b.client.SSubscribe(ctx, h.channel)
	default:
		ps = h.b.client.Subscribe(ctx, h.channel, h.mark)
	}
	msgs := ps.Channel(redis.WithChannelSize(64), redis.WithChannelHealthCheckInterval(h.interval),
		redis.WithChannelSendTimeout(h.b.timeout), redis.WithChannelPingTimeout(h.b.timeout),
		redis.WithChannelReconnectTimeout(h.b.timeout))
	h.wg.Add(1)
	go h.listen(msgs)
	return ps
}

// close ends both goroutines; it may be called again.
func (h *heartbeats) close() {
	h.stopOnce.Do(func() { close(h.stop) })
	h.wg.Wait()
}

// beat publishes a heartbeat at once and then every interval, and logs
// when what the heartbeats say changes. A heartbeat that reaches nobody
// did not reach this Bus's own subscription either: it sits where
// publishes no longer go (a Sentinel failover leaves it on the old
// master), so beat subscribes again. It closes the subscription when it
// stops.
func (h *heartbeats) beat(ps *redis.PubSub) {
	defer h.wg.Done()
	defer func() { ps.Close() }() // ends listen
	t := time.NewTicker(h.interval)
	defer t.Stop()
	since := time.Now()
	again := func(why string) {
		// A check just after subscribing may overtake the SUBSCRIBE.
		if time.Since(since) < h.interval {
			return
		}
		old := ps
		ps = h.subscribe()
		old.Close()
		since = time.Now()
		h.b.log.Warn("heartbeat subscription not where publishes go (a failover?); subscribed again", "why", why)
	}
	for {
		if h.publish() == 0 {
			again("a heartbeat reached no subscriber, not even this node's")
		}
		h.report(time.Now())
		select {
		case <-t.C:
		case <-h.moved:
			again("the master counts no subscriber on this node's heartbeat subscription")
		case <-h.stop:
			return
		}
	}
}

// publish publishes a heartbeat and returns how many subscribers Redis
// says received it; -1 if the publish failed.
func (h *heartbeats) publish() int64 {
	var body []byte
	for _, n := range h.b.ownNodes() {
		body = append(body, byte(len(n)))
		body = append(body, n...)
	}
	env := h.b.sealed(new(sealBuf), h.channel, body)
	ctx, cancel := context.WithTimeout(context.Background(), h.b.timeout)
	defer cancel()
	var n int64
	var err error
	if h.b.sharded {
		n, err = h.b.client.SPublish(ctx, h.channel, env).Result()
	} else {
		n, err = h.b.client.Publish(ctx, h.channel, env).Result()
	}
	if err != nil {
		h.b.log.Debug("heartbeat not published", "err", err)
		return -1
	}
	return n
}

// listen records the heartbeats of the other Buses until msgs is closed.
func (h *heartbeats) listen(msgs <-chan *redis.Message) {
	defer h.wg.Done()
	o := newOpener(h.channel)
	for m := range msgs {
		if m.Channel != h.channel {
			continue // the mark: nobody has a reason to publish there
		}
		h.receive(o, m.Payload, time.Now())
	}
}

func (h *heartbeats) receive(o *opener, payload string, now time.Time) {
	env, id, err := o.load(payload)
	if err != nil {
		h.refused.Add(1)
		return
	}
	if id.sender == h.b.sender {
		return // our own
	}
	h.mu.Lock()
	gcm := h.peers[id.sender].gcm
	h.mu.Unlock()
	if gcm == nil {
		gcm = senderMAC(h.b.key, id.sender)
	}
	body, err := o.open(gcm, id, now)
	if err != nil {
		// The body is readable without the key: it names the nodes
		// whose secret (or clock) differs.
		body = env[headerSize : len(env)-tagSize]
	}
	got := heard{nodes: parseNodes(body), at: now}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		got.gcm = gcm
		h.peers[id.sender] = got
		delete(h.others, id.sender)
	case errors.Is(err, errStale):
		h.refused.Add(1)
		got.reason = "timestamp more than " + MaxClockSkew.String() + " from this node's clock"
		h.others[id.sender] = got
	default:
		h.refused.Add(1)
		got.reason = "bad authentication tag: another cluster secret"
		h.others[id.sender] = got
	}
	h.updateBadLocked(now)
}

func parseNodes(b []byte) []string {
	var nodes []string
	for len(b) > 0 && len(b) >= 1+int(b[0]) {
		nodes = append(nodes, string(b[1:1+int(b[0])]))
		b = b[1+int(b[0]):]
	}
	return nodes
}

// pruneLocked forgets heartbeats older than the window.
func (h *heartbeats) pruneLocked(now time.Time) {
	old := now.Add(-heartbeatWindow * h.interval)
	for id, x := range h.peers {
		if x.at.Before(old) {
			delete(h.peers, id)
		}
	}
	for id, x := range h.others {
		if x.at.Before(old) {
			delete(h.others, id)
		}
	}
}

// updateBadLocked recomputes the nodes Publish refuses: those named in
// heartbeats that fail and in none that authenticates.
func (h *heartbeats) updateBadLocked(now time.Time) {
	h.pruneLocked(now)
	if len(h.others) == 0 {
		h.bad.Store(nil)
		return
	}
	good := make(map[string]bool)
	for _, x := range h.peers {
		for _, n := range x.nodes {
			good[n] = true
		}
	}
	bad := make(map[string]int)
	for _, x := range h.others {
		for _, n := range x.nodes {
			if !good[n] {
				bad[n]++
			}
		}
	}
	h.bad.Store(&bad)
}

// refuses returns ErrSecretMismatch, wrapped, when node is named only in
// heartbeats that fail authentication.
func (h *heartbeats) refuses(node string) error {
	bad := h.bad.Load()
	if bad == nil {
		return nil
	}
	if _, ok := (*bad)[node]; ok {
		return fmt.Errorf("%w: node %q's heartbeats fail authentication", ErrSecretMismatch, node)
	}
	return nil
}

// state says what the heartbeats show: an error when this node
// authenticates no other node's heartbeat but sees some that fail, a
// warning when only some fail, or nothing.
func (h *heartbeats) state(now time.Time) (warning string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.updateBadLocked(now)
	if len(h.others) == 0 {
		return "", nil
	}
	var seen []string
	for _, x := range h.others {
		name := strings.Join(x.nodes, ",")
		if name == "" {
			name = "a node not yet subscribed"
		}
		seen = append(seen, fmt.Sprintf("%s (%s)", name, x.reason))
	}
	slices.Sort(seen)
	what := strings.Join(seen, "; ")
	if len(h.peers) == 0 {
		return "", fmt.Errorf("%w: heartbeats of %d other node(s) fail authentication and none passes: %s; every node on this Redis and prefix needs the same cluster secret",
			ErrSecretMismatch, len(h.others), what)
	}
	return fmt.Sprintf("heartbeats of %d node(s) fail authentication, %d pass: %s", len(h.others), len(h.peers), what), nil
}

// report logs the state when it changed since the last report.
func (h *heartbeats) report(now time.Time) {
	warning, err := h.state(now)
	msg := warning
	if err != nil {
		msg = err.Error()
	}
	h.mu.Lock()
	changed := msg != h.reported
	h.reported = msg
	h.mu.Unlock()
	switch {
	case !changed:
	case err != nil:
		h.b.log.Error("cluster secret mismatch: this node can authenticate no other node; cross-node requests fail", "err", err)
	case warning != "":
		h.b.log.Warn("some nodes have another cluster secret (or clock)", "seen", warning)
	default:
		h.b.log.Info("heartbeats of every other node authenticate again")
	}
}

// Ready reports ErrSecretMismatch, wrapped with what the node saw, when it
// sees other nodes' heartbeats and can authenticate none of them.
func (b *Bus) Ready() error {
	_, err := b.hb.state(time.Now())
	return err
}

// Nodes lists this Bus's own nodes and those named in heartbeats that
// authenticated within the window.
func (b *Bus) Nodes() []string {
	nodes := b.ownNodes()
	h := b.hb
	h.mu.Lock()
	h.pruneLocked(time.Now())
	for _, x := range h.peers {
		nodes = append(nodes, x.nodes...)
	}
	h.mu.Unlock()
	slices.Sort(nodes)
	return slices.Compact(nodes)
}

// ownNodes lists the nodes this Bus subscribes.
func (b *Bus) ownNodes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	nodes := make([]string, 0, len(b.subs))
	for n := range b.subs {
		nodes = append(nodes, n)
	}
	return nodes
}
