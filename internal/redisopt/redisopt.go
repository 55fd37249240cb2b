// Package redisopt holds what the Redis bus and registry both need to know
// about a go-redis client.
package redisopt

import "github.com/redis/go-redis/v9"

// ContextTimeoutEnabled reports whether client lets a context deadline cut
// a socket read short. Unknown client types are given the benefit of the
// doubt.
func ContextTimeoutEnabled(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}
