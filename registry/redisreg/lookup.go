package redisreg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/registry"
)

// maxCachedLeases bounds the lease cache; past it the cache starts over.
const maxCachedLeases = 4096

// Lookup returns the nodes whose route of label is valid: written under
// the epoch their lease still holds.
func (r *Registry) Lookup(ctx context.Context, label string) ([]string, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, registry.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	routes, err := r.validRoutes(ctx, label)
	if err != nil {
		r.stats.lookupErrors.Add(1)
		r.reloadSlots()
		return nil, fmt.Errorf("redisreg: lookup %q: %w", label, err)
	}
	nodes := make([]string, 0, len(routes))
	for node, epoch := range routes {
		if r.leases.holds(node, epoch) {
			nodes = append(nodes, node)
			continue
		}
		// A dead node's route, or one of an earlier life. It is
		// invisible already; removing it is housekeeping.
		r.stats.expiredSeen.Add(1)
		_ = r.unlock.Run(ctx, r.client, []string{r.keys.route(label)}, node, epoch).Err()
	}
	return nodes, nil
}

// maxRouteReads bounds how often validRoutes reads a label's routes.
const maxRouteReads = 3

// validRoutes reads label's routes and the leases they need. A route
// read before its node wrote it again under a new epoch, with the lease
// read after that rewrite ended, looks stale though the route is live;
// so a route whose lease does not hold it is read once more, and judged
// on what it holds now, as long as its epoch keeps changing.
func (r *Registry) validRoutes(ctx context.Context, label string) (map[string]string, error) {
	routes, err := r.client.HGetAll(ctx, r.keys.route(label)).Result()
	for reads := 1; ; reads++ {
		if err != nil {
			return nil, err
		}
		if r.afterRouteRead != nil {
			r.afterRouteRead()
		}
		if err := r.checkLeases(ctx, routes); err != nil {
			return nil, fmt.Errorf("leases: %w", err)
		}
		if reads == maxRouteReads || !r.anyStale(routes) {
			return routes, nil
		}
		var again map[string]string
		again, err = r.client.HGetAll(ctx, r.keys.route(label)).Result()
		if err == nil && !r.changedStale(routes, again) {
			return routes, nil
		}
		routes = again
	}
}

// anyStale reports whether a route in routes carries an epoch its
// node's lease, as last read, does not hold.
func (r *Registry) anyStale(routes map[string]string) bool {
	for node, epoch := range routes {
		if !r.leases.holds(node, epoch) {
			return true
		}
	}
	return false
}

// changedStale reports whether a route that was stale in before carries
// another epoch in after.
func (r *Registry) changedStale(before, after map[string]string) bool {
	for node, epoch := range before {
		if !r.leases.holds(node, epoch) && after[node] != epoch && after[node] != "" {
			return true
		}
	}
	return false
}

// checkLeases reads the leases of the nodes in routes that the cache does
// not already show holding their route's epoch. A lease that does not
// match is always read afresh, so a route is never judged stale on a
// cached lease older than it.
func (r *Registry) checkLeases(ctx context.Context, routes map[string]string) error {
	var missing []string
	for node, epoch := range routes {
		if !r.leases.fresh(node, epoch) {
			missing = append(missing, node)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cmds := make([]*redis.StringCmd, len(missing))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, node := range missing {
			cmds[i] = p.Get(ctx, r.keys.lease(node))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	now := time.Now()
	for i, node := range missing {
		r.leases.put(node, cmds[i].Val(), now) // "" for a lapsed lease
	}
	return nil
}

// leaseCache remembers the leases a Lookup read, for ttl.
type leaseCache struct {
	ttl time.Duration
	mu  sync.Mutex // protects m
	m   map[string]cachedLease
}

type cachedLease struct {
	epoch string
	at    time.Time
}

// fresh reports whether node's lease was read within ttl holding epoch.
func (c *leaseCache) fresh(node, epoch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[node]
	return ok && leaseHolds(e.epoch, epoch) && time.Since(e.at) < c.ttl
}

// holds reports whether node's lease, as last read, holds epoch.
func (c *leaseCache) holds(node, epoch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[node]
	return ok && leaseHolds(e.epoch, epoch)
}

// leaseHolds reports whether a lease's value, one epoch or, while its
// node writes its routes again, "new old", holds epoch.
func leaseHolds(value, epoch string) bool {
	if epoch == "" {
		return false
	}
	for e := range strings.FieldsSeq(value) {
		if e == epoch {
			return true
		}
	}
	return false
}

func (c *leaseCache) put(node, epoch string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedLeases {
		clear(c.m)
	}
	c.m[node] = cachedLease{epoch, at}
}
