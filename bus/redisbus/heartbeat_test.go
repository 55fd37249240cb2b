package redisbus_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/bus/redisbus"
	"keyhole/internal/redistest"
)

func heartbeatBus(t *testing.T, client redis.UniversalClient, prefix string, secret []byte, node string) *redisbus.Bus {
	t.Helper()
	b, err := redisbus.New(client, redisbus.Options{
		Prefix:    prefix,
		Secret:    secret,
		Heartbeat: 100 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := b.Subscribe(node, func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	return b
}

func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Buses with the same secret learn of each other's nodes by their
// heartbeats and are ready; a bus with another secret says "cluster secret
// mismatch" in Ready, counts the heartbeats it refuses, and refuses at once
// to publish to a node it cannot authenticate.
func TestHeartbeats(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	a := heartbeatBus(t, srv.NewClient(t), prefix, secret, "a")
	b := heartbeatBus(t, srv.NewClient(t), prefix, secret, "b")
	within(t, 2*time.Second, "a and b to know each other", func() bool {
		return slices.Equal(a.Nodes(), []string{"a", "b"}) && slices.Equal(b.Nodes(), []string{"a", "b"})
	})
	if err := a.Ready(); err != nil {
		t.Errorf("a, same secret as b: Ready %v", err)
	}

	evil := heartbeatBus(t, srv.NewClient(t), prefix, otherSecret, "evil")
	// Both a's and b's heartbeats must have reached evil before it can
	// refuse either at once.
	within(t, 2*time.Second, "the node with another secret to hear both others", func() bool {
		err := evil.Ready()
		return errors.Is(err, redisbus.ErrSecretMismatch) && strings.Contains(err.Error(), "heartbeats of 2 other node(s)")
	})
	t.Logf("evil: %v", evil.Ready())
	if st := evil.Stats(); st.HeartbeatsRefused == 0 {
		t.Error("evil counted no refused heartbeat")
	}
	if slices.Contains(a.Nodes(), "evil") || slices.Contains(evil.Nodes(), "a") {
		t.Errorf("nodes that cannot authenticate each other are listed: a %v, evil %v", a.Nodes(), evil.Nodes())
	}
	start := time.Now()
	err := evil.Publish(context.Background(), "a", []byte("hi"))
	if !errors.Is(err, redisbus.ErrSecretMismatch) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("evil publishing to a: %v after %v, want %v at once", err, time.Since(start), redisbus.ErrSecretMismatch)
	}
	within(t, 2*time.Second, "a to refuse publishing to evil", func() bool {
		return errors.Is(a.Publish(context.Background(), "evil", []byte("hi")), redisbus.ErrSecretMismatch)
	})
	// a still authenticates b: one odd node out does not make it unready.
	if err := a.Ready(); err != nil {
		t.Errorf("a, with b authenticating: Ready %v", err)
	}
	if err := a.Publish(context.Background(), "b", []byte("hi")); err != nil {
		t.Errorf("a publishing to b: %v", err)
	}

	evil.Close()
	within(t, 2*time.Second, "the mismatch to be forgotten once the other node is gone", func() bool {
		return a.Publish(context.Background(), "evil", []byte("hi")) != nil &&
			!errors.Is(a.Publish(context.Background(), "evil", []byte("hi")), redisbus.ErrSecretMismatch)
	})
}
