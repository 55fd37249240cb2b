// Package rediscache keeps ACME certificates, the ACME account key and
// HTTP-01 tokens in Redis, where every proxy node of a cluster finds
// them, and locks a host across the nodes while one orders its first
// certificate. What it stores is sealed with a key derived from the
// cluster secret: Redis never holds a private key in the clear.
package rediscache

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"

	"keyhole/internal/certs"
)

// Cache is an autocert.Cache and a certs.Locker on Redis.
type Cache struct {
	rdb    redis.UniversalClient
	prefix string // of every key: <prefix>:acme:… and <prefix>:acme-lock:…
	aead   cipher.AEAD
}

var (
	_ autocert.Cache = (*Cache)(nil)
	_ certs.Locker   = (*Cache)(nil)
)

// New returns a Cache under prefix, sealing with a key derived from secret.
func New(rdb redis.UniversalClient, prefix string, secret []byte) (*Cache, error) {
	if len(secret) == 0 {
		return nil, errors.New("rediscache: no secret")
	}
	key := sha256.Sum256(append([]byte("keyhole acme cache v1\x00"), secret...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("rediscache: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("rediscache: %w", err)
	}
	return &Cache{rdb: rdb, prefix: prefix, aead: aead}, nil
}

func (c *Cache) key(name string) string { return c.prefix + ":acme:" + name }

// Get returns what Put stored under name, or autocert.ErrCacheMiss.
func (c *Cache) Get(ctx context.Context, name string) ([]byte, error) {
	sealed, err := c.rdb.Get(ctx, c.key(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, fmt.Errorf("acme cache get %s: %w", name, err)
	}
	n := c.aead.NonceSize()
	if len(sealed) < n {
		return nil, fmt.Errorf("acme cache get %s: %d bytes, too short", name, len(sealed))
	}
	data, err := c.aead.Open(nil, sealed[:n], sealed[n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("acme cache get %s: not sealed with this cluster's secret: %w", name, err)
	}
	return data, nil
}

// Put stores data under name, sealed.
func (c *Cache) Put(ctx context.Context, name string, data []byte) error {
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(data)+c.aead.Overhead())
	rand.Read(nonce)
	if err := c.rdb.Set(ctx, c.key(name), c.aead.Seal(nonce, nonce, data, []byte(name)), 0).Err(); err != nil {
		return fmt.Errorf("acme cache put %s: %w", name, err)
	}
	return nil
}

// Delete removes name.
func (c *Cache) Delete(ctx context.Context, name string) error {
	if err := c.rdb.Del(ctx, c.key(name)).Err(); err != nil {
		return fmt.Errorf("acme cache delete %s: %w", name, err)
	}
	return nil
}

// lockTTL bounds how long a node that died holding a lock keeps it.
const lockTTL = 3 * time.Minute

// unlockScript deletes a lock only if it is still the caller's.
var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Lock waits for name's lock, polling, until ctx is done.
func (c *Cache) Lock(ctx context.Context, name string) (func(), error) {
	key, token := c.prefix+":acme-lock:"+name, rand.Text()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := c.rdb.SetNX(ctx, key, token, lockTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("acme lock %s: %w", name, err)
		}
		if ok {
			return func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				unlockScript.Run(ctx, c.rdb, []string{key}, token)
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("acme lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}
