package e2e

import (
	"github.com/redis/go-redis/v9"

	"testing"

	"keyhole/bus"
	"keyhole/bus/redisbus"
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
