package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"keyhole/bus"
	"keyhole/bus/redisbus"
	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
	"keyhole/registry"
	"keyhole/registry/redisreg"
)

// redisNode returns a bus and registry on srv for one node, each node with
// its own Redis client as separate processes would have.
func redisNode(t *testing.T, srv *redistest.Server, prefix string) (bus.Bus, registry.Registry) {
	t.Helper()
	return redisNodeOn(t, srv.NewClient(t), prefix)
}

// redisNodeOn is redisNode on a client of any Redis: a server, a Cluster.
func redisNodeOn(t *testing.T, client redis.UniversalClient, prefix string) (bus.Bus, registry.Registry) {
	t.Helper()
	b, err := redisbus.New(client, redisbus.Options{Prefix: prefix, Secret: []byte("test cluster secret 0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := redisreg.New(client, redisreg.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); b.Close() })
	return b, r
}

func TestClusterRedis(t *testing.T) {
	srv := redistest.Start(t)
	prefixes := map[*testing.T]string{} // one namespace per subtest, shared by its nodes
	clusterSuite(t, func(t *testing.T, node string) (bus.Bus, registry.Registry) {
		if prefixes[t] == "" {
			prefixes[t] = redistest.Prefix(t)
		}
		return redisNode(t, srv, prefixes[t])
	})
}

// countedLookups counts the lookups a node makes of its registry.
type countedLookups struct {
	registry.Registry
	n atomic.Int64
}

func (c *countedLookups) Lookup(ctx context.Context, label string) ([]string, error) {
	c.n.Add(1)
	return c.Registry.Lookup(ctx, label)
}

// A burst of visitors to a tunnel on another node asks the registry once:
// the requests that miss the route cache together share one lookup.
func TestClusterRedisBurstSharesOneLookup(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	busA, regA := redisNode(t, srv, prefix)
	a := startProxy(t, proxy.Config{Node: "a", Bus: busA, Registry: regA})
	busB, regB := redisNode(t, srv, prefix)
	counted := &countedLookups{Registry: regB}
	b := startProxy(t, proxy.Config{Node: "b", Bus: busB, Registry: counted})
	c := startClient(t, a, be.URL, newKey(t))

	const visitors = 32
	hc := visitor(b)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, visitors)
	for range visitors {
		wg.Go(func() {
			<-start
			resp, err := hc.Get(c.url + "/")
			if err != nil {
				errs <- err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				errs <- fmt.Errorf("got %d %q, want 200 ok", resp.StatusCode, body)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The cache holds a route for a second: a burst slower than that may
	// look up once more.
	if n := counted.n.Load(); n > 2 {
		t.Errorf("%d visitors at once made %d lookups, want 1 (2 at most)", visitors, n)
	}
}
