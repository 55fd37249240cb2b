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
	routes, err := r.client.HGetAll(ctx, r.keys.route(label)).Result()
	if err != nil {
		r.stats.lookupErrors.Add(1)
		r.reloadSlots()
		return nil, fmt.Errorf("redisreg: lookup %q: %w", label, err)
	}
	if err := r.checkLeases(ctx, routes); err != nil {
		r.stats.lookupErrors.Add(1)
		r.reloadSlots()
		return nil, fmt.Errorf("redisreg: lookup %q: leases: %w", label, err)
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
