// Package redisreg is a registry.Registry over Redis, shared by the proxy
// nodes of one cluster (single server, Sentinel or Cluster, through a
// go-redis UniversalClient).
//
// Each label has a sorted set "<prefix>:route:<label>" whose members are
// the nodes holding it, scored by when that announcement expires (Unix
// milliseconds). A Registry remembers what it announced and re-announces
// all of it every Renew, pushing the expiry TTL ahead, and gives the key
// itself a TTL so a label nobody renews disappears. So:
//
//   - the routes of a node that dies expire within TTL, with nobody
//     cleaning up after it;
//   - after a Redis outage (or a restart that lost every key) the routes
//     are back at the next renewal, without restarting anything;
//   - Announce records the route even when Redis is down (and says so), and
//     the renewal writes it once Redis answers.
//
// Lookup reads the set and keeps the members whose expiry is still ahead;
// when it sees expired ones it removes them. Expiry compares the nodes'
// clocks, which must agree to well within Renew (NTP does). All nodes must
// use the same TTL, since each renewal resets the key's TTL.
//
// Every Redis call is bounded by Options.Timeout (and the caller's
// context), so a Lookup with Redis down fails fast. For that bound to hold
// against a Redis that accepts connections but does not answer, build the
// client with ContextTimeoutEnabled and short DialTimeout, ReadTimeout and
// WriteTimeout. The Registry does not own the client: close it after the
// Registry.
package redisreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/internal/redisopt"
	"keyhole/registry"
)

// Defaults for Options fields left zero.
const (
	DefaultPrefix  = "keyhole"
	DefaultTTL     = 6 * time.Second
	DefaultTimeout = time.Second
)

// renewBatch is how many routes one renewal pipeline carries.
const renewBatch = 512

// Options configure a Registry. Zero values mean the documented defaults.
type Options struct {
	// Prefix namespaces the keys, "<prefix>:route:<label>". Default
	// "keyhole".
	Prefix string

	// TTL is how long an announcement lasts unless renewed: how long the
	// routes of a dead node linger. Default 6s.
	TTL time.Duration

	// Renew is how often the Registry re-announces its routes. Default
	// TTL/3, so two renewals in a row can fail before a route lapses.
	Renew time.Duration

	// Timeout bounds each Redis call. Default one second.
	Timeout time.Duration

	// Logger receives renewal failures and recoveries. Default
	// slog.Default().
	Logger *slog.Logger
}

// route is one announcement.
type route struct{ label, node string }

// Registry is a registry.Registry over Redis. It is safe for concurrent
// use.
type Registry struct {
	client  redis.UniversalClient
	prefix  string
	ttl     time.Duration
	renew   time.Duration
	timeout time.Duration
	log     *slog.Logger
	stats   counters

	mu     sync.Mutex // protects own and closed
	own    map[route]struct{}
	closed bool

	// renewing keeps renewals and withdrawals apart in Redis: a renewal
	// holds it for writing from its snapshot to its last reply, Withdraw
	// for reading around its ZREM, after forgetting the route. So a
	// renewal whose snapshot still had the route cannot write it back
	// after Withdraw removed it.
	renewing sync.RWMutex

	stop chan struct{} // closed by Close to end the renewal goroutine
	done chan struct{} // closed when the renewal goroutine has returned
	down atomic.Bool   // the last renewal failed; for logging changes only
}

var _ registry.Registry = (*Registry)(nil)

// New returns a Registry on client and starts its renewal goroutine,
// which Close stops.
func New(client redis.UniversalClient, opts Options) (*Registry, error) {
	if client == nil {
		return nil, errors.New("redisreg: nil client")
	}
	r := &Registry{
		client:  client,
		prefix:  opts.Prefix,
		ttl:     opts.TTL,
		renew:   opts.Renew,
		timeout: opts.Timeout,
		log:     opts.Logger,
		own:     make(map[route]struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if r.prefix == "" {
		r.prefix = DefaultPrefix
	}
	if r.ttl <= 0 {
		r.ttl = DefaultTTL
	}
	if r.renew <= 0 {
		r.renew = r.ttl / 3
	}
	if r.renew >= r.ttl {
		return nil, fmt.Errorf("redisreg: renew interval %v must be shorter than TTL %v", r.renew, r.ttl)
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "redisreg")
	if !redisopt.ContextTimeoutEnabled(client) {
		r.log.Warn("redis client has ContextTimeoutEnabled off: a Redis that stops answering holds calls for the client's own timeouts and retries, not Options.Timeout")
	}
	go r.renewLoop()
	return r, nil
}

// Announce records that node holds label and writes it to Redis. If Redis
// fails, the route stays recorded and the next renewal writes it; the
// error says that this one did not.
func (r *Registry) Announce(ctx context.Context, label, node string) error {
	rt := route{label, node}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return registry.ErrClosed
	}
	r.own[rt] = struct{}{}
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		r.add(ctx, p, rt, time.Now())
		return nil
	}); err != nil {
		r.stats.announceErrors.Add(1)
		r.reloadSlots()
		return fmt.Errorf("redisreg: announce %q on %q (kept; renewal retries): %w", label, node, err)
	}
	return nil
}

// Withdraw forgets the route and removes it from Redis. If Redis fails,
// the route is still forgotten, and it expires from Redis within TTL.
func (r *Registry) Withdraw(ctx context.Context, label, node string) error {
	rt := route{label, node}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return registry.ErrClosed
	}
	delete(r.own, rt)
	r.mu.Unlock()

	r.renewing.RLock()
	defer r.renewing.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.ZRem(ctx, r.key(label), node).Err(); err != nil {
		r.stats.withdrawErrors.Add(1)
		r.reloadSlots()
		return fmt.Errorf("redisreg: withdraw %q on %q (expires within %v): %w", label, node, r.ttl, err)
	}
	return nil
}

// Lookup returns the nodes whose announcement of label has not expired.
func (r *Registry) Lookup(ctx context.Context, label string) ([]string, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, registry.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key := r.key(label)
	members, err := r.client.ZRangeWithScores(ctx, key, 0, -1).Result()
	if err != nil {
		r.stats.lookupErrors.Add(1)
		r.reloadSlots()
		return nil, fmt.Errorf("redisreg: lookup %q: %w", label, err)
	}
	now := time.Now().UnixMilli()
	nodes := make([]string, 0, len(members))
	for _, m := range members {
		if int64(m.Score) > now {
			nodes = append(nodes, m.Member.(string))
		}
	}
	if len(nodes) < len(members) {
		// A node died without withdrawing. Its entries are invisible
		// already; removing them is housekeeping, so failure is ignored.
		r.stats.expiredSeen.Add(uint64(len(members) - len(nodes)))
		_ = r.client.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now, 10)).Err()
	}
	return nodes, nil
}

// Close stops the renewal, waits for it, and withdraws every route this
// Registry announced (best effort: what it cannot remove expires within
// TTL). Later calls fail with registry.ErrClosed.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	own := r.snapshotLocked()
	clear(r.own)
	r.mu.Unlock()

	close(r.stop)
	<-r.done

	if len(own) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, rt := range own {
			p.ZRem(ctx, r.key(rt.label), rt.node)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisreg: close: withdraw %d routes (they expire within %v): %w", len(own), r.ttl, err)
	}
	return nil
}

// Stats returns a snapshot of the Registry's counters.
func (r *Registry) Stats() Stats {
	return r.stats.snapshot()
}

// renewLoop re-announces every route each Renew until Close.
func (r *Registry) renewLoop() {
	defer close(r.done)
	t := time.NewTicker(r.renew)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.renewAll()
		}
	}
}

// renewAll writes every recorded route with a fresh expiry.
func (r *Registry) renewAll() {
	r.renewing.Lock()
	defer r.renewing.Unlock()
	r.mu.Lock()
	own := r.snapshotLocked()
	r.mu.Unlock()

	var failed error
	for start := 0; start < len(own); start += renewBatch {
		batch := own[start:min(start+renewBatch, len(own))]
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			now := time.Now()
			for _, rt := range batch {
				r.add(ctx, p, rt, now)
			}
			return nil
		})
		cancel()
		if err != nil {
			failed = err
			break
		}
	}
	r.stats.renewals.Add(1)
	switch {
	case failed != nil:
		r.stats.renewErrors.Add(1)
		r.reloadSlots()
		if !r.down.Swap(true) {
			r.log.Warn("renewing routes failed; they lapse after TTL until Redis answers", "routes", len(own), "ttl", r.ttl, "err", failed)
		}
	case r.down.Swap(false):
		r.log.Info("renewing routes again", "routes", len(own))
	}
}

// add queues the commands that (re)announce rt as of now.
func (r *Registry) add(ctx context.Context, p redis.Pipeliner, rt route, now time.Time) {
	key := r.key(rt.label)
	p.ZAdd(ctx, key, redis.Z{Score: float64(now.Add(r.ttl).UnixMilli()), Member: rt.node})
	p.PExpire(ctx, key, r.ttl)
}

func (r *Registry) snapshotLocked() []route {
	own := make([]route, 0, len(r.own))
	for rt := range r.own {
		own = append(own, rt)
	}
	return own
}

// reloadSlots has a Cluster client reload its slot map after a failure
// that may mean a master failed over: go-redis would otherwise keep
// sending to the dead master until its periodic reload, a minute later.
func (r *Registry) reloadSlots() {
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

func (r *Registry) key(label string) string {
	return r.prefix + ":route:" + label
}
