package rediscache_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"keyhole/internal/certs/rediscache"
	"keyhole/internal/redistest"
)

// What one node puts, another node with the same secret gets; Redis holds
// it sealed; a node with another secret cannot read it.
func TestCacheSharedAndSealed(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	ctx := context.Background()
	a, err := rediscache.New(srv.NewClient(t), prefix, []byte("the cluster secret"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := rediscache.New(srv.NewClient(t), prefix, []byte("the cluster secret"))
	other, _ := rediscache.New(srv.NewClient(t), prefix, []byte("another secret"))

	if _, err := b.Get(ctx, "host.example.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("get before put: got %v, want autocert.ErrCacheMiss", err)
	}
	secret := []byte("-----BEGIN EC PRIVATE KEY-----\nprivate\n")
	if err := a.Put(ctx, "host.example.test", secret); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "host.example.test"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("get on another node: got %q, %v; want %q", got, err, secret)
	}
	raw, err := srv.NewClient(t).Get(ctx, prefix+":acme:host.example.test").Bytes()
	if err != nil || bytes.Contains(raw, []byte("PRIVATE")) {
		t.Fatalf("stored in Redis: got %q, %v; want it sealed", raw, err)
	}
	if _, err := other.Get(ctx, "host.example.test"); err == nil || errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("get with another secret: got %v, want an error that is not a miss", err)
	}
	if err := b.Delete(ctx, "host.example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "host.example.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("get after delete: got %v, want autocert.ErrCacheMiss", err)
	}
}

// One node at a time holds a host's lock; the others wait, and give up
// when their context ends.
func TestLock(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	a, _ := rediscache.New(srv.NewClient(t), prefix, []byte("s"))
	b, _ := rediscache.New(srv.NewClient(t), prefix, []byte("s"))

	unlock, err := a.Lock(context.Background(), "host")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, "host"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: got %v, want a deadline error", err)
	}
	if u, err := b.Lock(context.Background(), "other host"); err != nil {
		t.Fatalf("lock of another host: %v", err)
	} else {
		u()
	}
	var got atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		u, err := b.Lock(context.Background(), "host")
		if err == nil {
			got.Store(true)
			u()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if got.Load() {
		t.Fatal("second node took the lock while the first held it")
	}
	unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("second node did not get the lock within 5 s of its release")
	}
	if !got.Load() {
		t.Fatal("second node's lock failed after the release")
	}
}
