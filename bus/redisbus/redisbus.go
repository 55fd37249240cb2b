// Package redisbus is a bus.Bus over Redis pub/sub, joining proxy nodes
// that share one Redis (single server, Sentinel or Cluster, through a
// go-redis UniversalClient). A node subscribes under its name to the
// channel "<prefix>:node:<name>"; Publish is one PUBLISH to that channel
// (concurrent publishes share a pipeline, see publish.go) and fails at once
// with bus.ErrNoSubscriber when Redis reports no receiver. On a Cluster client the bus uses sharded pub/sub (SPUBLISH,
// SSUBSCRIBE), because a plain PUBLISH there counts only the receivers on
// the node that took it and the no-subscriber check would lie; and it
// follows a failover of its channel's master within seconds (watch.go).
//
// Every message is sealed with a GMAC (AES-256-GCM authenticating only)
// under a key derived from the cluster secret and the sending Bus's random
// id, over the channel name, a timestamp, that id, the Bus's message
// counter and the message (layout in envelope.go). A
// subscriber drops, and counts in Stats, any message that is malformed,
// carries a bad tag (another secret, or a message replayed onto another
// node's channel), a timestamp more than MaxClockSkew from its own clock,
// or a counter it has already seen from that sender (a message replayed on
// its own channel; see replay.go). So anything else that can read and
// publish on the Redis can neither inject messages nor repeat them.
//
// Delivery is at most once. Redis pub/sub keeps nothing: a message
// published while a subscriber is disconnected is lost, and Redis
// disconnects a subscriber that falls behind its client output buffer
// limit for pub/sub. go-redis reconnects and resubscribes by itself (Stats
// counts each Resubscribed), but what was published meanwhile is gone.
// Callers detect loss with sequence numbers and timeouts and turn it into
// a prompt error. An error from Publish does not prove the message was not
// delivered: a timed-out PUBLISH may still reach the subscriber.
//
// What it costs Redis: a node, one PUBSUB NUMSUB (SHARDNUMSUB per
// channel on a Cluster) a second to check its subscriptions (watch.go), a
// heartbeat PUBLISH every Heartbeat, and go-redis's health-check PING on
// each subscription; a message, one PUBLISH (SPUBLISH), which concurrent
// publishes share a pipeline for.
//
// Every Redis call is bounded by Options.Timeout (and the caller's
// context); a Publish whose context has a later deadline may take until
// then, for a caller that would rather wait on a busy Redis than fail,
// like the body of a stream already under way. For that bound to hold against a Redis that accepts
// connections but does not answer, build the client with
// ContextTimeoutEnabled and short DialTimeout, ReadTimeout and
// WriteTimeout (about a second each); New logs a warning otherwise. The
// Bus does not own the client: close it after the Bus.
package redisbus

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/bus"
	"keyhole/internal/redisopt"
)

// Defaults for Options fields left zero.
const (
	DefaultPrefix     = "keyhole"
	DefaultTimeout    = time.Second
	DefaultBufferSize = 1024
	MinSecretSize     = 16
)

// Options configure a Bus. Zero values mean the documented defaults,
// except Secret, which is required.
type Options struct {
	// Prefix namespaces the channels, "<prefix>:node:<node>". Nodes that
	// reach each other use the same prefix. Default "keyhole".
	Prefix string

	// Secret is the cluster secret every node shares; it authenticates
	// every message. At least MinSecretSize bytes of random data.
	Secret []byte

	// Timeout bounds each Redis call: a publish, a subscribe or an
	// unsubscribe. Default one second.
	Timeout time.Duration

	// BufferSize is how many received messages a subscription holds
	// between Redis and its handler, which bounds that memory to
	// BufferSize times the largest message. When it is full, go-redis
	// stops reading and Redis's own pub/sub output buffer limit takes
	// over (the subscriber is disconnected and resubscribes, counted in
	// Stats.Resubscribed). Default 1024.
	BufferSize int

	// Heartbeat is how often the Bus publishes its heartbeat on the
	// shared channel, by which the nodes learn of each other and a node
	// with another cluster secret learns it (heartbeat.go). Default
	// DefaultHeartbeat.
	Heartbeat time.Duration

	// Logger receives reconnects and dropped messages. Default
	// slog.Default().
	Logger *slog.Logger
}

// Bus is a bus.Bus over Redis pub/sub. It is safe for concurrent use.
type Bus struct {
	client  redis.UniversalClient
	prefix  string
	key     []byte
	timeout time.Duration
	buffer  int
	sharded bool
	log     *slog.Logger
	sender  senderID      // random, so receivers keep each Bus's counters apart
	mac     cipher.AEAD   // sender's key (senderMAC), for sealing; safe for concurrent use
	seals   sync.Pool     // of *sealBuf, for Publish
	counter atomic.Uint64 // the last message's counter; Publish adds one
	stats   counters
	closed  atomic.Bool
	hb      *heartbeats

	mu   sync.Mutex // protects subs and the transition to closed; held while a Subscribe starts
	subs map[string]*subscription

	queue      chan *publishReq // publishes waiting for a publisher
	quit       chan struct{}    // closed by Close: publishers and the watcher stop
	stopOnce   sync.Once
	publishers sync.WaitGroup

	kick     chan struct{}  // wakes the watcher; see watch.go
	watchers sync.WaitGroup // the watcher
}

var (
	_ bus.Bus       = (*Bus)(nil)
	_ bus.Directory = (*Bus)(nil)
	_ bus.Checked   = (*Bus)(nil)
)

// New returns a Bus that publishes and subscribes through client.
func New(client redis.UniversalClient, opts Options) (*Bus, error) {
	if client == nil {
		return nil, errors.New("redisbus: nil client")
	}
	if len(opts.Secret) < MinSecretSize {
		return nil, fmt.Errorf("redisbus: secret must be at least %d bytes, got %d", MinSecretSize, len(opts.Secret))
	}
	b := &Bus{
		client:  client,
		prefix:  opts.Prefix,
		key:     deriveKey(opts.Secret),
		timeout: opts.Timeout,
		buffer:  opts.BufferSize,
		log:     opts.Logger,
		subs:    make(map[string]*subscription),
	}
	if b.prefix == "" {
		b.prefix = DefaultPrefix
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if b.buffer <= 0 {
		b.buffer = DefaultBufferSize
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("component", "redisbus")
	// A fresh id per Bus, so a restarted node's counters starting again
	// at 1 are not taken for replays, and its key is fresh: GCM nonces
	// repeat across Buses, keys do not. rand.Read never fails.
	rand.Read(b.sender[:])
	b.mac = senderMAC(b.key, b.sender)
	b.seals.New = func() any { return new(sealBuf) }
	_, b.sharded = client.(*redis.ClusterClient)
	if !redisopt.ContextTimeoutEnabled(client) {
		b.log.Warn("redis client has ContextTimeoutEnabled off: a Redis that stops answering holds calls for the client's own timeouts and retries, not Options.Timeout")
	}
	b.startPublishers()
	hb := opts.Heartbeat
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	b.startHeartbeats(hb)
	b.startWatch() // after the heartbeats, whose subscription it checks too
	return b, nil
}

// Subscribe subscribes to node's channel and returns once Redis has
// confirmed it, so a Publish that follows reaches handle. handle is called
// from one goroutine, one message at a time, in order; it must not block,
// must not keep msg after it returns, and must not close the subscription.
// One Bus holds at most one subscription per node.
func (b *Bus) Subscribe(node string, handle func(msg []byte)) (bus.Subscription, error) {
	if handle == nil {
		return nil, errors.New("redisbus: subscribe: nil handler")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	if _, ok := b.subs[node]; ok {
		return nil, fmt.Errorf("redisbus: node %q already subscribed", node)
	}
	s, err := b.subscribe(node, handle)
	if err != nil {
		return nil, fmt.Errorf("redisbus: subscribe %q: %w", node, err)
	}
	b.subs[node] = s
	return s, nil
}

// Close ends every subscription, waits for their goroutines, and makes
// later calls fail with bus.ErrClosed. It does not close the client.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed.Store(true)
	subs := make([]*subscription, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { _ = s.Close() })
	}
	wg.Wait()
	b.stopPublishers()
	b.hb.close()
	b.watchers.Wait()
	return nil
}

// Stats returns a snapshot of the Bus's counters.
func (b *Bus) Stats() Stats {
	st := b.stats.snapshot()
	st.HeartbeatsRefused = b.hb.refused.Load()
	return st
}

// Losses counts the events after which messages to this process may have
// been lost: subscriptions restored after their connection dropped.
func (b *Bus) Losses() uint64 {
	return b.Stats().Resubscribed
}

var _ bus.Lossy = (*Bus)(nil)

func (b *Bus) channel(node string) string {
	return b.prefix + ":node:" + node
}

// forget removes s from the subscriptions if it is still there.
func (b *Bus) forget(s *subscription) {
	b.mu.Lock()
	if b.subs[s.node] == s {
		delete(b.subs, s.node)
	}
	b.mu.Unlock()
}
