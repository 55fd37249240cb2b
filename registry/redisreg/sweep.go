package redisreg

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// sweep removes the routes, index and entry of every node in the nodes
// hash whose lease no longer holds its epoch. Every node sweeps; doing it
// twice is harmless, and a node that comes back meanwhile has a new epoch
// the sweep does not touch.
func (r *Registry) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), 4*r.opts.Timeout)
	defer cancel()
	nodes, err := r.client.HGetAll(ctx, r.keys.nodes()).Result()
	if err != nil {
		return
	}
	r.mu.Lock()
	for n := range r.nodes {
		delete(nodes, n) // our own are renewed, not swept
	}
	r.mu.Unlock()
	dead, err := r.deadNodes(ctx, nodes)
	if err != nil {
		return
	}
	for node, epoch := range dead {
		labels, err := r.client.SMembers(ctx, r.keys.index(node, epoch)).Result()
		if err != nil {
			return
		}
		r.unlockRoutes(ctx, node, epoch, labels)
		_ = r.client.Del(ctx, r.keys.index(node, epoch)).Err()
		_ = r.unlock.Run(ctx, r.client, []string{r.keys.nodes()}, node, epoch).Err()
		r.stats.swept.Add(uint64(len(labels)))
		r.log.Info("removed the routes of a node whose lease lapsed", "node", node, "routes", len(labels))
	}
}

// deadNodes returns those of nodes (node -> epoch) whose lease does not
// hold their epoch.
func (r *Registry) deadNodes(ctx context.Context, nodes map[string]string) (map[string]string, error) {
	if len(nodes) == 0 {
		return nil, nil
	}
	cmds := make(map[string]*redis.StringCmd, len(nodes))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for n := range nodes {
			cmds[n] = p.Get(ctx, r.keys.lease(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	dead := make(map[string]string)
	for n, c := range cmds {
		if !leaseHolds(c.Val(), nodes[n]) {
			dead[n] = nodes[n]
		}
	}
	return dead, nil
}
