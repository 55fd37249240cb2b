// Package redisreg is a registry.Registry over Redis, shared by the proxy
// nodes of one cluster (single server, Sentinel or Cluster, through a
// go-redis UniversalClient).
//
// Liveness is per node, routes are per change. A node holds one lease,
// "<prefix>:lease:{<node>}", a string whose value is the node's
// epoch (a random id chosen each time it takes the lease) and whose TTL it
// renews every Renew. A route is a field of the hash
// "<prefix>:route:<label>": the field is the node, the value the epoch it
// was written under. A route is written when the first link of a tunnel
// comes up on a node and removed when the last one goes, never on a
// timer. Lookup keeps the routes whose node's lease still holds their
// epoch; the others belong to a dead node (or to an earlier life of one)
// and are removed as they are seen. So:
//
//   - the routes of a node that dies vanish from lookups once its lease
//     lapses (TTL, plus up to LeaseCache for a lease another lookup just
//     read), with nobody withdrawing them;
//   - when a renewal finds the lease gone (Redis lost its data, or the
//     node was cut off longer than TTL), or after a write failed, the node
//     takes a new epoch and writes every route it holds again;
//   - Announce records the route even when Redis is down (and says so),
//     and the next renewal writes it once Redis answers.
//
// Every node also keeps the labels it announced under an epoch in
// "<prefix>:labels:{<node>}:<epoch>" and its epoch in the hash
// "<prefix>:nodes". Every Sweep, each node reads that hash and removes the
// routes of nodes whose lease lapsed, so the keys of labels that nobody
// looks up again do not outlive their node for long. The braces put a
// node's lease and its index in one Cluster slot; route keys spread over
// the slots by label.
//
// What it costs Redis, with n nodes:
//
//   - a node: one PEXPIRE per Renew (1 s), and per Sweep (30 s) one
//     HGETALL and n GETs; nothing per tunnel while nothing changes;
//   - a tunnel: an HSET and an SADD when it appears on a node, an HDEL and
//     an SREM when it goes;
//   - a request through another node: one HGETALL, plus a GET per node
//     holding the label whose lease was not read in the last LeaseCache
//     (the proxy also caches the route itself for a second);
//   - a lease lost: a rewrite of the node's routes, two commands each.
//
// The registries of all nodes must use the same TTL. Every Redis call is
// bounded by Options.Timeout (and the caller's context), so a Lookup with
// Redis down fails fast. For that bound to hold against a Redis that
// accepts connections but does not answer, build the client with
// ContextTimeoutEnabled and short DialTimeout, ReadTimeout and
// WriteTimeout. The Registry does not own the client: close it after the
// Registry.
package redisreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	DefaultTTL     = 5 * time.Second
	DefaultRenew   = time.Second
	DefaultSweep   = 30 * time.Second
	DefaultTimeout = time.Second
)

// Options configure a Registry. Zero values mean the documented defaults.
type Options struct {
	// Prefix namespaces the keys. Default "keyhole".
	Prefix string

	// TTL is how long a node's lease lasts unless renewed: how long the
	// routes of a dead node stay visible. Default 5s.
	TTL time.Duration

	// Renew is how often the Registry renews its leases. Default 1s, or
	// TTL/3 if that is shorter; it must be shorter than TTL.
	Renew time.Duration

	// LeaseCache is how long a Lookup trusts another node's lease it read
	// before. Default Renew.
	LeaseCache time.Duration

	// Sweep is how often the Registry removes the routes of dead nodes
	// nobody looked up. Default 30s.
	Sweep time.Duration

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
	client redis.UniversalClient
	keys   keys
	opts   Options
	log    *slog.Logger
	stats  counters
	leases leaseCache
	unlock *redis.Script

	mu     sync.Mutex // protects own, nodes and closed
	own    map[route]struct{}
	nodes  map[string]*lease // the leases of the nodes announced through this Registry
	closed bool

	// writing keeps announcements apart from rewrites: Announce and
	// Withdraw hold it for reading from reading the epoch to their last
	// reply, a rewrite for writing while it changes the epoch. So no
	// route is written under an epoch that is being replaced, and a
	// rewrite whose snapshot still had a route cannot write it back after
	// Withdraw removed it.
	writing sync.RWMutex

	stop chan struct{} // closed by Close to end the renewal goroutine
	done chan struct{} // closed when the renewal goroutine has returned
	down atomic.Bool   // the last renewal failed; for logging changes only

	afterRouteRead func() // tests: runs in a Lookup between reading a route and its lease
}

var _ registry.Registry = (*Registry)(nil)

// New returns a Registry on client and starts its renewal goroutine,
// which Close stops.
func New(client redis.UniversalClient, opts Options) (*Registry, error) {
	if client == nil {
		return nil, errors.New("redisreg: nil client")
	}
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		client: client,
		keys:   keys{prefix: opts.Prefix},
		opts:   opts,
		log:    opts.Logger.With("component", "redisreg"),
		leases: leaseCache{m: make(map[string]cachedLease), ttl: opts.LeaseCache},
		unlock: redis.NewScript(unlockScript),
		own:    make(map[route]struct{}),
		nodes:  make(map[string]*lease),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if !redisopt.ContextTimeoutEnabled(client) {
		r.log.Warn("redis client has ContextTimeoutEnabled off: a Redis that stops answering holds calls for the client's own timeouts and retries, not Options.Timeout")
	}
	go r.renewLoop()
	return r, nil
}

func withDefaults(o Options) (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Renew <= 0 {
		o.Renew = min(DefaultRenew, o.TTL/3)
	}
	if o.Renew >= o.TTL {
		return o, fmt.Errorf("redisreg: renew interval %v must be shorter than TTL %v", o.Renew, o.TTL)
	}
	if o.LeaseCache <= 0 {
		o.LeaseCache = o.Renew
	}
	if o.Sweep <= 0 {
		o.Sweep = DefaultSweep
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Announce records that node holds label and writes it to Redis. If Redis
// fails, the route stays recorded and the next renewal writes it; the
// error says that this one did not.
func (r *Registry) Announce(ctx context.Context, label, node string) error {
	r.writing.RLock()
	defer r.writing.RUnlock()
	rt := route{label, node}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return registry.ErrClosed
	}
	r.own[rt] = struct{}{}
	l := r.leaseLocked(node)
	fresh, epoch := !l.taken, l.epoch
	l.taken = true
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var err error
	if fresh {
		err = r.takeLease(ctx, node, epoch)
	}
	if err == nil {
		_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			r.writeRoute(ctx, p, rt, epoch)
			return nil
		})
	}
	if err != nil {
		r.stats.announceErrors.Add(1)
		r.reloadSlots()
		r.markStale(node)
		return fmt.Errorf("redisreg: announce %q on %q (kept; renewal retries): %w", label, node, err)
	}
	return nil
}

// Withdraw forgets the route and removes it from Redis. If Redis fails,
// the route is still forgotten, and the next renewal takes a new epoch,
// under which the route is no longer valid.
func (r *Registry) Withdraw(ctx context.Context, label, node string) error {
	r.writing.RLock()
	defer r.writing.RUnlock()
	rt := route{label, node}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return registry.ErrClosed
	}
	delete(r.own, rt)
	l, ok := r.nodes[node]
	var epoch string
	if ok {
		epoch = l.epoch
	}
	r.mu.Unlock()
	if !ok {
		return nil // never announced through this Registry
	}

	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, r.keys.route(label), node)
		p.SRem(ctx, r.keys.index(node, epoch), label)
		return nil
	})
	if err != nil {
		r.stats.withdrawErrors.Add(1)
		r.reloadSlots()
		r.markStale(node)
		return fmt.Errorf("redisreg: withdraw %q on %q (void after the next renewal): %w", label, node, err)
	}
	return nil
}

// Close stops the renewal, waits for it, and removes every route and
// lease this Registry wrote (best effort: what it cannot remove lapses
// with the lease). Later calls fail with registry.ErrClosed.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	own := r.snapshotLocked("")
	nodes := r.nodesLocked()
	clear(r.own)
	r.mu.Unlock()

	close(r.stop)
	<-r.done

	if len(nodes) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	defer cancel()
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, rt := range own {
			p.HDel(ctx, r.keys.route(rt.label), rt.node)
		}
		for node, epoch := range nodes {
			p.Del(ctx, r.keys.lease(node), r.keys.index(node, epoch))
			p.HDel(ctx, r.keys.nodes(), node)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisreg: close: withdraw %d routes (they lapse within %v): %w", len(own), r.opts.TTL, err)
	}
	return nil
}

// Stats returns a snapshot of the Registry's counters.
func (r *Registry) Stats() Stats {
	return r.stats.snapshot()
}

// writeRoute queues the commands that announce rt under epoch.
func (r *Registry) writeRoute(ctx context.Context, p redis.Pipeliner, rt route, epoch string) {
	p.HSet(ctx, r.keys.route(rt.label), rt.node, epoch)
	p.SAdd(ctx, r.keys.index(rt.node, epoch), rt.label)
}

// snapshotLocked returns the routes of node, or of every node for "".
func (r *Registry) snapshotLocked(node string) []route {
	own := make([]route, 0, len(r.own))
	for rt := range r.own {
		if node == "" || rt.node == node {
			own = append(own, rt)
		}
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

// nodesLocked returns the epoch of every lease taken.
func (r *Registry) nodesLocked() map[string]string {
	m := make(map[string]string, len(r.nodes))
	for n, l := range r.nodes {
		if l.taken {
			m[n] = l.epoch
		}
	}
	return m
}
