package redisreg

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// writeBatch is how many routes one rewrite or sweep pipeline carries.
const writeBatch = 512

// lease is a node's lease as this Registry holds it.
type lease struct {
	epoch string // the value of the lease, and of the node's routes
	taken bool   // the lease was written (or tried) at least once
	stale bool   // a write failed: the next renewal rewrites everything
}

func newEpoch() string { return rand.Text()[:16] }

// leaseLocked returns node's lease, making it on first use.
func (r *Registry) leaseLocked(node string) *lease {
	l := r.nodes[node]
	if l == nil {
		l = &lease{epoch: newEpoch()}
		r.nodes[node] = l
	}
	return l
}

// markStale makes the next renewal rewrite node's routes under a new epoch.
func (r *Registry) markStale(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.nodes[node]; l != nil {
		l.stale = true
	}
}

// takeLease writes node's lease under epoch. It runs in a round trip of
// its own, before any route under epoch is written: a Lookup that sees a
// route also sees its lease, even on a Cluster, where the commands of one
// pipeline to different slots are not ordered.
//
// While a node writes its routes again under a new epoch, its lease holds
// the old one too, "new old": a Lookup meanwhile still finds the routes of
// the old epoch valid, so nobody sees the tunnel gone and removes the
// route, before the new one is written.
func (r *Registry) takeLease(ctx context.Context, node, epoch string, also ...string) error {
	value := strings.Join(append([]string{epoch}, also...), " ")
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.keys.lease(node), value, r.opts.TTL)
		p.HSet(ctx, r.keys.nodes(), node, epoch)
		return nil
	})
	return err
}

// renewLoop renews the leases each Renew, and sweeps each Sweep, until
// Close.
func (r *Registry) renewLoop() {
	defer close(r.done)
	renew := time.NewTicker(r.opts.Renew)
	defer renew.Stop()
	sweep := time.NewTicker(r.opts.Sweep)
	defer sweep.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-renew.C:
			r.renewAll()
		case <-sweep.C:
			r.sweep()
		}
	}
}

// renewAll pushes every lease's expiry ahead, and rewrites the routes of
// a node whose lease is gone or whose last write failed.
func (r *Registry) renewAll() {
	r.mu.Lock()
	nodes := make(map[string]bool, len(r.nodes))
	for n, l := range r.nodes {
		if l.taken {
			nodes[n] = l.stale
		}
	}
	r.mu.Unlock()
	if len(nodes) == 0 {
		return
	}
	failed := r.renewLeases(nodes)
	for node, stale := range nodes {
		if stale && failed == nil {
			failed = r.rewrite(node)
		}
	}
	r.stats.renewals.Add(1)
	switch {
	case failed != nil:
		r.stats.renewErrors.Add(1)
		r.reloadSlots()
		if !r.down.Swap(true) {
			r.log.Warn("renewing routes failed; they lapse after TTL until Redis answers", "ttl", r.opts.TTL, "err", failed)
		}
	case r.down.Swap(false):
		r.log.Info("renewing routes again")
	}
}

// renewLeases runs one PEXPIRE per lease and marks in nodes those found
// gone: Redis lost them, or they lapsed while Redis was out of reach.
func (r *Registry) renewLeases(nodes map[string]bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	defer cancel()
	cmds := make(map[string]*redis.BoolCmd, len(nodes))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for n := range nodes {
			cmds[n] = p.PExpire(ctx, r.keys.lease(n), r.opts.TTL)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for n, c := range cmds {
		if !c.Val() {
			nodes[n] = true
		}
	}
	return nil
}

// rewrite takes a new epoch for node and writes every route it holds
// under it, then removes what the old epoch left behind.
func (r *Registry) rewrite(node string) error {
	r.writing.Lock()
	defer r.writing.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	l := r.leaseLocked(node)
	old, epoch := l.epoch, newEpoch()
	own := r.snapshotLocked(node)
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout+time.Duration(len(own)/writeBatch)*r.opts.Timeout)
	defer cancel()
	if err := r.takeLease(ctx, node, epoch, old); err != nil {
		return fmt.Errorf("take lease: %w", err)
	}
	r.mu.Lock()
	l.epoch, l.stale = epoch, false
	r.mu.Unlock()
	r.stats.rewrites.Add(1)
	r.log.Info("writing routes again under a new lease", "node", node, "routes", len(own))
	for start := 0; start < len(own); start += writeBatch {
		batch := own[start:min(start+writeBatch, len(own))]
		if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, rt := range batch {
				r.writeRoute(ctx, p, rt, epoch)
			}
			return nil
		}); err != nil {
			r.markStale(node)
			return fmt.Errorf("write routes: %w", err)
		}
	}
	r.forgetEpoch(ctx, node, old)
	if err := r.takeLease(ctx, node, epoch); err != nil {
		r.markStale(node)
		return fmt.Errorf("take lease: %w", err)
	}
	return nil
}

// forgetEpoch removes the routes node still has under an epoch it left,
// and that epoch's index. Failure is ignored: the routes are invalid
// already, and the sweep of a later life does not see them, so they stay
// until a lookup of their label removes them.
func (r *Registry) forgetEpoch(ctx context.Context, node, epoch string) {
	labels, err := r.client.SMembers(ctx, r.keys.index(node, epoch)).Result()
	if err != nil {
		return
	}
	r.unlockRoutes(ctx, node, epoch, labels)
	_ = r.client.Del(ctx, r.keys.index(node, epoch)).Err()
}

// unlockRoutes removes node's routes of labels that still carry epoch.
func (r *Registry) unlockRoutes(ctx context.Context, node, epoch string, labels []string) {
	for start := 0; start < len(labels); start += writeBatch {
		batch := labels[start:min(start+writeBatch, len(labels))]
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, label := range batch {
				r.unlock.Eval(ctx, p, []string{r.keys.route(label)}, node, epoch)
			}
			return nil
		})
	}
}
