package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sharded is a Redis Cluster of several masters, each a redis-server on a
// free loopback port owning an equal share of the slots.
type Sharded struct {
	Masters []*Server
}

// StartSharded starts a Redis Cluster of n masters (no replicas), the
// slots split evenly among them, and waits until every node reports the
// cluster ok.
func StartSharded(t testing.TB, n int) *Sharded {
	t.Helper()
	c := &Sharded{}
	for range n {
		c.Masters = append(c.Masters, start(t, true))
	}
	const slots = 16384
	for i, m := range c.Masters {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if _, err := command(m.Addr(), "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			t.Fatalf("redistest: cluster addslotsrange on %s: %v", m.Addr(), err)
		}
		if i > 0 {
			if _, err := command(m.Addr(), "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(c.Masters[0].port)); err != nil {
				t.Fatalf("redistest: cluster meet: %v", err)
			}
		}
	}
	deadline := time.Now().Add(startTimeout)
	for _, m := range c.Masters {
		for {
			info, err := command(m.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster of %d not ok within %v: %v %q", n, startTimeout, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// Addrs returns host:port of every master.
func (c *Sharded) Addrs() []string {
	var out []string
	for _, m := range c.Masters {
		out = append(out, m.Addr())
	}
	return out
}

// URL is a --redis URL naming every master.
func (c *Sharded) URL() string {
	u := "redis://" + c.Masters[0].Addr()
	for i, a := range c.Addrs()[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// NewClient returns a cluster client with the short timeouts a proxy node
// should use, closed when the test ends.
func (c *Sharded) NewClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	})
	t.Cleanup(func() { _ = cl.Close() })
	// Reach every master now, so the client's per-node goroutines start
	// here rather than in the middle of a test that counts goroutines.
	if err := cl.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		return m.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("redistest: reach every master: %v", err)
	}
	return cl
}
