package proxy

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// errNodeGone means the first message of a stream found no subscriber on
// the node its route named: nothing reached any node, so the request may
// go to another route as it is.
var errNodeGone = errors.New("gone")

// goneFor is how long a node whose publish found no subscriber is routed
// around: longer than the registry's default TTL (6 s), so the routes of a
// dead node have expired before it is tried again. A probe that finds its
// subscriber back ends it sooner.
const goneFor = 10 * time.Second

// maxGoneNodes bounds the memory; past it, it starts over.
const maxGoneNodes = 1024

// maxSkipped bounds how many times one request finds its node gone, and
// goneWait spaces the tries after the first: 0, goneWait, 2×goneWait, …
// (1.5 s in all). Another node holding the label is tried at once; when
// the gone node is the only one, the wait covers a node that is
// subscribing again after a Redis failover (its bus checks every second,
// see redisbus), so its visitors see a short delay instead of a 502. A
// node that really died fails its visitors within those 1.5 s.
const (
	maxSkipped = 4
	goneWait   = 250 * time.Millisecond
)

// goneNodes remembers the other nodes a publish found without a
// subscriber, so routing tries the live nodes holding a label first
// instead of waiting for the dead one's routes to expire.
type goneNodes struct {
	n  atomic.Int32         // len(m), so routing skips the lock while no node is gone
	mu sync.Mutex           // protects m
	m  map[string]time.Time // node → until when it is routed around
}

// mark records node as gone and reports whether it was not already.
func (g *goneNodes) mark(node string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if g.m == nil || len(g.m) >= maxGoneNodes {
		g.m = make(map[string]time.Time)
	}
	until, was := g.m[node]
	g.m[node] = now.Add(goneFor)
	g.n.Store(int32(len(g.m)))
	return !was || now.After(until)
}

// clear forgets node: it has a subscriber again.
func (g *goneNodes) clear(node string) {
	if g.n.Load() == 0 {
		return
	}
	g.mu.Lock()
	delete(g.m, node)
	g.n.Store(int32(len(g.m)))
	g.mu.Unlock()
}

// list returns the nodes still routed around, dropping the expired ones.
func (g *goneNodes) list() []string {
	if g.n.Load() == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	var nodes []string
	for n, until := range g.m {
		if now.After(until) {
			delete(g.m, n)
			continue
		}
		nodes = append(nodes, n)
	}
	g.n.Store(int32(len(g.m)))
	return nodes
}

// pick returns one of nodes at random, a node not gone if there is one.
// When all are gone it still returns one: a node that came back under the
// same name answers, and a dead one fails at once.
func (g *goneNodes) pick(nodes []string) string {
	if len(nodes) == 1 || g.n.Load() == 0 {
		return nodes[rand.N(len(nodes))]
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	live := 0
	for _, n := range nodes {
		if !g.goneLocked(n, now) {
			live++
		}
	}
	if live == 0 {
		return nodes[rand.N(len(nodes))]
	}
	k := rand.N(live)
	for _, n := range nodes {
		if g.goneLocked(n, now) {
			continue
		}
		if k == 0 {
			return n
		}
		k--
	}
	return nodes[0] // not reached: k < live
}

func (g *goneNodes) goneLocked(node string, now time.Time) bool {
	until, ok := g.m[node]
	return ok && now.Before(until)
}
