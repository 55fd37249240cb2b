package redisreg_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/internal/redistest"
	"keyhole/registry"
	"keyhole/registry/redisreg"
	"keyhole/registry/registrytest"
)

// promptly bounds errors that must come at once when Redis is unusable.
const promptly = 3 * time.Second

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	registrytest.Run(t, func(t *testing.T) (registry.Registry, registry.Registry) {
		prefix := redistest.Prefix(t)
		opts := redisreg.Options{Prefix: prefix}
		return newRegistry(t, srv.NewClient(t), opts), newRegistry(t, srv.NewClient(t), opts)
	})
}

func TestContractCluster(t *testing.T) {
	srv := redistest.StartCluster(t)
	registrytest.Run(t, func(t *testing.T) (registry.Registry, registry.Registry) {
		prefix := redistest.Prefix(t)
		opts := redisreg.Options{Prefix: prefix}
		return newRegistry(t, srv.NewClient(t), opts), newRegistry(t, srv.NewClient(t), opts)
	})
}

func TestNewRefuses(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		opts   redisreg.Options
		want   string
	}{
		{"nil client", nil, redisreg.Options{}, "nil client"},
		{"renew not shorter than TTL", client, redisreg.Options{TTL: time.Second, Renew: time.Second}, "shorter than TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := redisreg.New(tc.client, tc.opts)
			if err == nil {
				_ = r.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRenewalKeepsRoutes: routes outlive many TTLs while their registry
// renews them.
func TestRenewalKeepsRoutes(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t), TTL: 300 * time.Millisecond, Renew: 100 * time.Millisecond}
	a := newRegistry(t, srv.NewClient(t), opts)
	b := newRegistry(t, srv.NewClient(t), opts)
	announce(t, a, "l", "node-a")
	time.Sleep(5 * opts.TTL)
	expect(t, b, "l", "node-a")
	if st := a.Stats(); st.Renewals < 3 || st.RenewErrors != 0 {
		t.Fatalf("got Renewals %d, RenewErrors %d; want at least 3, 0", st.Renewals, st.RenewErrors)
	}
}

// TestDeadNodeRoutesExpire simulates a node that is killed: its registry
// can no longer reach Redis to renew or withdraw, and its routes vanish
// after TTL with nobody cleaning up.
func TestDeadNodeRoutesExpire(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	const ttl = time.Second
	deadClient := srv.NewClient(t)
	dead := newRegistry(t, deadClient, redisreg.Options{Prefix: prefix, TTL: ttl})
	live := newRegistry(t, srv.NewClient(t), redisreg.Options{Prefix: prefix})
	announce(t, dead, "l", "node-dead")
	announce(t, live, "l", "node-live")
	announce(t, dead, "only-dead", "node-dead")
	killed := time.Now()
	_ = deadClient.Close() // the node's link to Redis is gone
	if err := dead.Close(); err == nil {
		t.Fatal("close without Redis: got nil error, want the failed withdrawal reported")
	}
	expect(t, live, "l", "node-dead", "node-live") // nobody withdrew it

	waitFor(t, ttl+2*time.Second, "dead node's routes to expire", func() bool {
		shared, err1 := live.Lookup(context.Background(), "l")
		alone, err2 := live.Lookup(context.Background(), "only-dead")
		return err1 == nil && err2 == nil && slices.Equal(shared, []string{"node-live"}) && len(alone) == 0
	})
	if d := time.Since(killed); d < ttl-100*time.Millisecond {
		t.Errorf("routes expired %v after the node died, before TTL %v", d, ttl)
	}
	// The key of a label nobody renews vanishes by itself.
	raw := srv.NewClient(t)
	waitFor(t, 2*time.Second, "the dead label's key to expire", func() bool {
		n, err := raw.Exists(context.Background(), prefix+":route:only-dead").Result()
		return err == nil && n == 0
	})
}

// TestRedisKilled: with Redis down, lookups fail at once and announcements
// are kept; when Redis comes back empty, renewal restores the routes with
// nothing restarted, and what was withdrawn meanwhile stays withdrawn.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t)} // the defaults nodes run with
	a := newRegistry(t, srv.NewClient(t), opts)
	b := newRegistry(t, srv.NewClient(t), opts)
	ctx := context.Background()
	announce(t, a, "before", "node-a")
	announce(t, a, "withdrawn", "node-a")

	srv.Kill()
	start := time.Now()
	if _, err := b.Lookup(ctx, "before"); err == nil {
		t.Fatal("lookup with Redis down: got nil error, want an error")
	}
	if d := time.Since(start); d > promptly {
		t.Fatalf("lookup with Redis down took %v, want under %v", d, promptly)
	}
	start = time.Now()
	if err := a.Announce(ctx, "during", "node-a"); err == nil {
		t.Fatal("announce with Redis down: got nil error, want an error")
	}
	if err := a.Withdraw(ctx, "withdrawn", "node-a"); err == nil {
		t.Fatal("withdraw with Redis down: got nil error, want an error")
	}
	if d := time.Since(start); d > 2*promptly {
		t.Fatalf("announce and withdraw with Redis down took %v, want under %v", d, 2*promptly)
	}

	srv.Restart() // empty: every key is lost
	waitFor(t, 10*time.Second, "routes to come back", func() bool {
		n1, err1 := b.Lookup(ctx, "before")
		n2, err2 := b.Lookup(ctx, "during")
		return err1 == nil && err2 == nil && len(n1) == 1 && len(n2) == 1
	})
	expect(t, b, "withdrawn")
	if st := a.Stats(); st.RenewErrors < 1 || st.AnnounceErrors != 1 || st.WithdrawErrors != 1 {
		t.Errorf("got RenewErrors %d, AnnounceErrors %d, WithdrawErrors %d; want at least 1, 1, 1", st.RenewErrors, st.AnnounceErrors, st.WithdrawErrors)
	}
	if st := b.Stats(); st.LookupErrors < 1 {
		t.Errorf("got LookupErrors %d, want at least 1", st.LookupErrors)
	}
}

// TestRedisFrozen: a Redis that accepts connections but never answers
// fails lookups within the timeout, and all is well once it answers.
func TestRedisFrozen(t *testing.T) {
	srv := redistest.Start(t)
	opts := redisreg.Options{Prefix: redistest.Prefix(t)}
	a := newRegistry(t, srv.NewClient(t), opts)
	announce(t, a, "l", "node-a")
	srv.Freeze()
	start := time.Now()
	_, err := a.Lookup(context.Background(), "l")
	d := time.Since(start)
	srv.Thaw()
	if err == nil || d > promptly {
		t.Fatalf("lookup on a frozen Redis: got %v after %v, want an error within %v", err, d, promptly)
	}
	waitFor(t, 10*time.Second, "lookups to work again", func() bool {
		nodes, err := a.Lookup(context.Background(), "l")
		return err == nil && len(nodes) == 1
	})
}

func newRegistry(t *testing.T, client redis.UniversalClient, opts redisreg.Options) *redisreg.Registry {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	r, err := redisreg.New(client, opts)
	if err != nil {
		t.Fatalf("new registry: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func announce(t *testing.T, r registry.Registry, label, node string) {
	t.Helper()
	if err := r.Announce(context.Background(), label, node); err != nil {
		t.Fatalf("announce %s on %s: %v", label, node, err)
	}
}

func expect(t *testing.T, r registry.Registry, label string, want ...string) {
	t.Helper()
	got, err := r.Lookup(context.Background(), label)
	if err != nil {
		t.Fatalf("lookup %s: %v", label, err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("lookup %s: got %q, want %q", label, got, want)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestContractSharded runs the contract on a Cluster of three masters, so
// leases, indexes and routes land on different nodes.
func TestContractSharded(t *testing.T) {
	c := redistest.StartSharded(t, 3)
	registrytest.Run(t, func(t *testing.T) (registry.Registry, registry.Registry) {
		opts := redisreg.Options{Prefix: redistest.Prefix(t)}
		return newRegistry(t, c.NewClient(t), opts), newRegistry(t, c.NewClient(t), opts)
	})
}
