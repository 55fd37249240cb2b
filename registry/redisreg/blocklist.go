package redisreg

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/registry"
)

// Blocklist is a registry.Blocklist in the Redis set "<prefix>:blocked",
// shared by every node of the cluster. Each call is one Redis command
// bounded by the timeout.
type Blocklist struct {
	client  redis.UniversalClient
	key     string
	timeout time.Duration
}

var _ registry.Blocklist = (*Blocklist)(nil)

// NewBlocklist returns the blocklist of the nodes using prefix (default
// DefaultPrefix) on client; timeout 0 means DefaultTimeout.
func NewBlocklist(client redis.UniversalClient, prefix string, timeout time.Duration) *Blocklist {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Blocklist{client: client, key: prefix + ":blocked", timeout: timeout}
}

func (b *Blocklist) Block(ctx context.Context, label string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := b.client.SAdd(ctx, b.key, label).Err(); err != nil {
		return fmt.Errorf("redisreg: block %s: %w", label, err)
	}
	return nil
}

func (b *Blocklist) Unblock(ctx context.Context, label string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := b.client.SRem(ctx, b.key, label).Err(); err != nil {
		return fmt.Errorf("redisreg: unblock %s: %w", label, err)
	}
	return nil
}

func (b *Blocklist) Blocked(ctx context.Context, label string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	ok, err := b.client.SIsMember(ctx, b.key, label).Result()
	if err != nil {
		return false, fmt.Errorf("redisreg: blocked %s: %w", label, err)
	}
	return ok, nil
}
