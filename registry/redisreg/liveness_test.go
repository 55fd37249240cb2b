package redisreg_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/internal/redistest"
	"keyhole/registry/redisreg"
)

// commands returns how many commands Redis has run, from INFO
// commandstats.
func commands(t *testing.T, c redis.UniversalClient) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("info commandstats: %v", err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		v, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		n += v
	}
	return n
}

// TestIdleCostIsPerNode: a node holding many routes costs Redis a few
// commands per renewal, not one per route.
func TestIdleCostIsPerNode(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t), TTL: time.Second, Renew: 100 * time.Millisecond}
	a := newRegistry(t, srv.NewClient(t), opts)
	const routes = 1000
	for i := range routes {
		announce(t, a, fmt.Sprintf("l%d", i), "node-a")
	}
	raw := srv.NewClient(t)
	before := commands(t, raw)
	const idle = 2 * time.Second
	time.Sleep(idle)
	got := commands(t, raw) - before - 2 // less our own two INFOs
	renewals := int(idle / opts.Renew)
	if got > 2*renewals {
		t.Errorf("idle for %v with %d routes: Redis ran %d commands, want at most %d (about one per renewal)", idle, routes, got, 2*renewals)
	}
	t.Logf("idle for %v with %d routes: %d commands", idle, routes, got)
	expect(t, a, "l999", "node-a")
}

// TestLostLeaseRewrites: when Redis loses the keys (FLUSHALL stands for a
// restart that lost them), the next renewal writes every route again.
func TestLostLeaseRewrites(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t), TTL: 2 * time.Second, Renew: 200 * time.Millisecond}
	a := newRegistry(t, srv.NewClient(t), opts)
	b := newRegistry(t, srv.NewClient(t), opts)
	announce(t, a, "x", "node-a")
	announce(t, a, "y", "node-a")
	if err := srv.NewClient(t).FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	expect(t, b, "x")
	waitFor(t, 2*time.Second, "routes to be written again", func() bool {
		x, _ := b.Lookup(context.Background(), "x")
		y, _ := b.Lookup(context.Background(), "y")
		return len(x) == 1 && len(y) == 1
	})
	if st := a.Stats(); st.Rewrites < 1 || counter(a, "rewrites") < 1 {
		t.Errorf("got Rewrites %d (metrics: %d), want at least 1 in both", st.Rewrites, counter(a, "rewrites"))
	}
}

// TestRestartedNodeSameName: a node that comes back under the same name
// does not bring back the routes of its earlier life.
func TestRestartedNodeSameName(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t)}
	deadClient := srv.NewClient(t)
	old := newRegistry(t, deadClient, opts)
	announce(t, old, "gone", "node-a")
	announce(t, old, "kept", "node-a")
	_ = deadClient.Close() // killed: nothing withdrawn
	_ = old.Close()

	reborn := newRegistry(t, srv.NewClient(t), opts)
	other := newRegistry(t, srv.NewClient(t), opts)
	announce(t, reborn, "kept", "node-a")
	expect(t, other, "kept", "node-a")
	expect(t, other, "gone")
}

// TestSweepRemovesDeadNodesRoutes: the keys of a dead node's labels go
// away without anyone looking them up.
func TestSweepRemovesDeadNodesRoutes(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	opts := redisreg.Options{Prefix: prefix, TTL: 500 * time.Millisecond, Renew: 100 * time.Millisecond, Sweep: 200 * time.Millisecond}
	deadClient := srv.NewClient(t)
	dead := newRegistry(t, deadClient, opts)
	live := newRegistry(t, srv.NewClient(t), opts)
	for i := range 10 {
		announce(t, dead, fmt.Sprintf("d%d", i), "node-dead")
	}
	announce(t, live, "alive", "node-live")
	_ = deadClient.Close()
	_ = dead.Close()

	raw := srv.NewClient(t)
	waitFor(t, 3*time.Second, "the dead node's keys to be swept", func() bool {
		keys, err := raw.Keys(context.Background(), prefix+":*").Result()
		if err != nil {
			return false
		}
		for _, k := range keys {
			if strings.Contains(k, "node-dead") || strings.Contains(k, ":route:d") {
				return false
			}
		}
		// The sweep counts the routes once it has removed them all: the
		// keys may be gone a moment before.
		return live.Stats().Swept >= 10
	})
	if st := live.Stats(); st.Swept != 10 {
		t.Errorf("got Swept %d, want 10", st.Swept)
	}
	if got := counter(live, "swept"); got != 10 {
		t.Errorf("metrics: got swept %d, want 10", got)
	}
	expect(t, live, "alive", "node-live")
}

// TestClusterSlots: a node's lease and its index share a slot, and route
// keys of different labels spread over the slots.
func TestClusterSlots(t *testing.T) {
	srv := redistest.StartCluster(t)
	prefix := redistest.Prefix(t)
	a := newRegistry(t, srv.NewClient(t), redisreg.Options{Prefix: prefix})
	for i := range 50 {
		announce(t, a, fmt.Sprintf("l%d", i), "node-a")
	}
	raw := srv.NewClient(t)
	ctx := context.Background()
	keys, err := raw.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	nodeSlots, routeSlots := map[int64]bool{}, map[int64]bool{}
	for _, k := range keys {
		slot, err := raw.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(k, "{node-a}"):
			nodeSlots[slot] = true
		case strings.Contains(k, ":route:"):
			routeSlots[slot] = true
		}
	}
	if len(nodeSlots) != 1 {
		t.Errorf("node-a's lease and index: got %d slots, want 1 (%q)", len(nodeSlots), keys)
	}
	if len(routeSlots) < 40 {
		t.Errorf("50 route keys: got %d slots, want them spread", len(routeSlots))
	}
}

// TestRewriteKeepsRoutesVisible: while a node writes its routes again
// under a new epoch (after a failed write, as during a failover), every
// lookup still finds them.
func TestRewriteKeepsRoutesVisible(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t), TTL: 2 * time.Second, Renew: 50 * time.Millisecond}
	a := newRegistry(t, srv.NewClient(t), opts)
	b := newRegistry(t, srv.NewClient(t), opts)
	labels := make([]string, 600)
	for i := range labels {
		labels[i] = fmt.Sprintf("label-%d", i)
		announce(t, a, labels[i], "node-a")
	}
	deadline := time.Now().Add(2 * time.Second)
	var lookups, missing int
	for i := 0; time.Now().Before(deadline); i++ {
		if i%20 == 0 {
			a.MarkStale("node-a")
		}
		got, err := b.Lookup(context.Background(), labels[i%len(labels)])
		if err != nil {
			t.Fatal(err)
		}
		lookups++
		if len(got) != 1 {
			missing++
		}
	}
	if st := a.Stats(); st.Rewrites < 2 || missing > 0 {
		t.Errorf("%d of %d lookups found no route during %d rewrites, want none", missing, lookups, st.Rewrites)
	}
}

// TestLookupAcrossARewrite: a Lookup that reads a route just before its
// node writes it again under a new epoch, and the lease just after that
// rewrite has ended, still finds the route.
func TestLookupAcrossARewrite(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t)}
	a := newRegistry(t, srv.NewClient(t), opts)
	b := newRegistry(t, srv.NewClient(t), opts)
	announce(t, a, "label", "node-a")
	rewrites := 0
	b.AfterRouteRead(func() {
		if rewrites == 0 {
			rewrites++
			if err := a.Rewrite("node-a"); err != nil {
				t.Error(err)
			}
		}
	})
	got, err := b.Lookup(context.Background(), "label")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "node-a" {
		t.Errorf("lookup across a rewrite: got %q, want [node-a]", got)
	}
	if rewrites != 1 {
		t.Errorf("rewrites during the lookup: got %d, want 1", rewrites)
	}
	expect(t, b, "label", "node-a")
}

// counter is the value of the metrics counter name of r, 0 if it has none.
func counter(r *redisreg.Registry, name string) uint64 {
	for _, c := range r.Counters() {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}
