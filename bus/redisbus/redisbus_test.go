package redisbus_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/bus"
	"keyhole/bus/bustest"
	"keyhole/bus/redisbus"
	"keyhole/internal/leaktest"
	"keyhole/internal/redistest"
)

var (
	secret      = []byte("0123456789abcdef-test-cluster-secret")
	otherSecret = []byte("fedcba9876543210-some-other-secret")
)

// promptly bounds errors that must come at once when Redis is unusable.
const promptly = 3 * time.Second

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		prefix := redistest.Prefix(t)
		return newBus(t, srv.NewClient(t), prefix, secret), newBus(t, srv.NewClient(t), prefix, secret)
	})
}

// TestContractCluster runs the contract over a ClusterClient, where the
// bus uses sharded pub/sub.
func TestContractCluster(t *testing.T) {
	srv := redistest.StartCluster(t)
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		prefix := redistest.Prefix(t)
		return newBus(t, srv.NewClient(t), prefix, secret), newBus(t, srv.NewClient(t), prefix, secret)
	})
}

func TestNewRefuses(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		secret []byte
		want   string
	}{
		{"nil client", nil, secret, "nil client"},
		{"no secret", client, nil, "at least 16 bytes"},
		{"short secret", client, []byte("fifteen bytes!!"), "at least 16 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := redisbus.New(tc.client, redisbus.Options{Secret: tc.secret})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestForgedDropped publishes raw messages on a node's channel, as anything
// else with access to the Redis could, and checks that none reaches the
// handler and each is counted.
func TestForgedDropped(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	recv := newBus(t, srv.NewClient(t), prefix, secret)
	got := make(chan []byte, 100)
	sub, err := recv.Subscribe("n", func(m []byte) { got <- bytes.Clone(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })

	raw := srv.NewClient(t)
	ctx := context.Background()
	channel := prefix + ":node:n"
	now := time.Now()
	msg := []byte("POST /admin")
	valid := handSeal(secret, channel, now, msg)
	flip := func(i int) []byte { b := bytes.Clone(valid); b[i] ^= 1; return b }
	forgeries := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"plain text", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"header cut short", valid[:40]},
		{"unknown version", func() []byte { b := bytes.Clone(valid); b[0] = 2; return b }()},
		{"timestamp changed", flip(8)},
		{"tag bit flipped", flip(20)},
		{"message bit flipped", flip(len(valid) - 1)},
		{"message appended", append(bytes.Clone(valid), 'x')},
		{"other secret", handSeal(otherSecret, channel, now, msg)},
		{"sealed for another node", handSeal(secret, prefix+":node:m", now, msg)},
		{"sealed for another prefix", handSeal(secret, "other:node:n", now, msg)},
	}
	for _, f := range forgeries {
		if n, err := raw.Publish(ctx, channel, f.payload).Result(); err != nil || n != 1 {
			t.Fatalf("%s: raw publish: got %d receivers, %v; want 1, nil", f.name, n, err)
		}
	}
	// A node with the wrong secret publishes through the API: Redis
	// delivers it, the receiver drops it.
	evil := newBus(t, srv.NewClient(t), prefix, otherSecret)
	if err := evil.Publish(ctx, "n", msg); err != nil {
		t.Fatalf("publish with another secret: %v", err)
	}

	// Messages on one connection arrive in order: once these two are
	// through, every forgery before them has been judged.
	if n, err := raw.Publish(ctx, channel, handSeal(secret, channel, time.Now(), []byte("sealed by hand"))).Result(); err != nil || n != 1 {
		t.Fatalf("publish hand-sealed message: got %d receivers, %v", n, err)
	}
	good := newBus(t, srv.NewClient(t), prefix, secret)
	if err := good.Publish(ctx, "n", []byte("real")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for _, want := range []string{"sealed by hand", "real"} {
		if m := receive(t, got); string(m) != want {
			t.Fatalf("got %q, want %q", m, want)
		}
	}
	select {
	case m := <-got:
		t.Fatalf("got extra message %q, want forgeries dropped", m)
	default:
	}
	st := recv.Stats()
	if want := uint64(len(forgeries) + 1); st.Forged != want || st.Delivered != 2 || st.Stale != 0 {
		t.Fatalf("got Forged %d, Delivered %d, Stale %d; want %d, 2, 0", st.Forged, st.Delivered, st.Stale, want)
	}
}

// TestStaleDropped sends authentic messages with timestamps just outside
// and just inside the window.
func TestStaleDropped(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	recv := newBus(t, srv.NewClient(t), prefix, secret)
	got := make(chan []byte, 100)
	sub, err := recv.Subscribe("n", func(m []byte) { got <- bytes.Clone(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	raw := srv.NewClient(t)
	channel := prefix + ":node:n"
	for _, tc := range []struct {
		age     time.Duration
		deliver bool
	}{
		{redisbus.MaxClockSkew + time.Second, false},
		{-redisbus.MaxClockSkew - time.Second, false},
		{time.Hour, false},
		{redisbus.MaxClockSkew - 5*time.Second, true},
		{-redisbus.MaxClockSkew + 5*time.Second, true},
	} {
		env := handSeal(secret, channel, time.Now().Add(-tc.age), []byte(tc.age.String()))
		if err := raw.Publish(context.Background(), channel, env).Err(); err != nil {
			t.Fatal(err)
		}
	}
	end := handSeal(secret, channel, time.Now(), []byte("end"))
	if err := raw.Publish(context.Background(), channel, end).Err(); err != nil {
		t.Fatal(err)
	}
	var delivered []string
	for {
		m := receive(t, got)
		if string(m) == "end" {
			break
		}
		delivered = append(delivered, string(m))
	}
	if want := []string{"25s", "-25s"}; strings.Join(delivered, ",") != strings.Join(want, ",") {
		t.Fatalf("got delivered %q, want %q", delivered, want)
	}
	if st := recv.Stats(); st.Stale != 3 || st.Forged != 0 {
		t.Fatalf("got Stale %d, Forged %d; want 3, 0", st.Stale, st.Forged)
	}
}

// TestRedisKilled kills redis-server under a subscribed bus: publishing and
// subscribing fail at once, and once Redis is back the old subscription
// hears messages again with nothing recreated.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	before := runtime.NumGoroutine()
	a := newBus(t, srv.NewClient(t), prefix, secret)
	b := newBus(t, srv.NewClient(t), prefix, secret)
	got := make(chan []byte, 1000)
	sub, err := b.Subscribe("b", func(m []byte) { got <- bytes.Clone(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	extra, err := b.Subscribe("extra", func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Publish(ctx, "b", []byte("before")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, got); string(m) != "before" {
		t.Fatalf("got %q, want before", m)
	}

	srv.Kill()
	start := time.Now()
	err = a.Publish(ctx, "b", []byte("during"))
	if d := time.Since(start); err == nil || errors.Is(err, bus.ErrNoSubscriber) || d > promptly {
		t.Fatalf("publish with Redis down: got %v after %v, want a Redis error within %v", err, d, promptly)
	}
	start = time.Now()
	if s, err := a.Subscribe("new", func([]byte) {}); err == nil {
		_ = s.Close()
		t.Fatal("subscribe with Redis down: got nil error, want an error")
	}
	if d := time.Since(start); d > promptly {
		t.Fatalf("subscribe with Redis down took %v, want under %v", d, promptly)
	}
	start = time.Now()
	_ = extra.Close()
	if d := time.Since(start); d > promptly {
		t.Fatalf("closing a subscription with Redis down took %v, want under %v", d, promptly)
	}

	srv.Restart()
	waitFlowing(t, a, "b", got)
	if st := b.Stats(); st.Resubscribed < 1 {
		t.Errorf("got Resubscribed %d, want at least 1", st.Resubscribed)
	}
	if st := a.Stats(); st.PublishErrors < 1 {
		t.Errorf("got PublishErrors %d, want at least 1", st.PublishErrors)
	}
	// Nothing the outage started outlives the buses.
	_ = a.Close()
	_ = b.Close()
	leaktest.Check(t, before)
}

// TestRedisFrozen stops redis-server with SIGSTOP: connections stay open
// but nothing answers, the case where only timeouts help.
func TestRedisFrozen(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	a := newBus(t, srv.NewClient(t), prefix, secret)
	b := newBus(t, srv.NewClient(t), prefix, secret)
	got := make(chan []byte, 1000)
	sub, err := b.Subscribe("b", func(m []byte) { got <- bytes.Clone(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })

	srv.Freeze()
	start := time.Now()
	err = a.Publish(context.Background(), "b", []byte("frozen"))
	if d := time.Since(start); err == nil || d > promptly {
		srv.Thaw()
		t.Fatalf("publish to a frozen Redis: got %v after %v, want an error within %v", err, d, promptly)
	}
	srv.Thaw()
	waitFlowing(t, a, "b", got)
}

func TestPublishHonoursContext(t *testing.T) {
	srv := redistest.Start(t)
	a := newBus(t, srv.NewClient(t), redistest.Prefix(t), secret)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Publish(ctx, "b", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// waitFlowing publishes until node's subscription hears it again.
func waitFlowing(t *testing.T, pub *redisbus.Bus, node string, got <-chan []byte) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		want := "after-" + string(rune('a'+i%26))
		if err := pub.Publish(context.Background(), node, []byte(want)); err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for {
			select {
			case m := <-got:
				if string(m) == want {
					return
				}
				// Something published before the outage may still arrive.
				continue
			case <-time.After(2 * time.Second):
			}
			break
		}
	}
	t.Fatal("messages did not flow again within 15s of Redis coming back")
}

func receive(t *testing.T, got <-chan []byte) []byte {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func newBus(t *testing.T, client redis.UniversalClient, prefix string, secret []byte) *redisbus.Bus {
	t.Helper()
	b, err := redisbus.New(client, redisbus.Options{
		Prefix: prefix,
		Secret: secret,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatalf("new bus: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// handSeal builds an envelope from the layout documented in envelope.go,
// independently of the package's own code.
func handSeal(secret []byte, channel string, ts time.Time, msg []byte) []byte {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("keyhole bus v1"))
	key := k.Sum(nil)
	head := make([]byte, 9)
	head[0] = 1
	binary.BigEndian.PutUint64(head[1:], uint64(ts.UnixMilli()))
	m := hmac.New(sha256.New, key)
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(channel))))
	m.Write([]byte(channel))
	m.Write(head)
	m.Write(msg)
	env := append(head, m.Sum(nil)...)
	return append(env, msg...)
}

// Concurrent publishes share pipelines; each publisher's messages still
// arrive whole, once, and in the order it published them.
func TestConcurrentPublishesKeepOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *redistest.Server
	}{
		{"single", redistest.Start},
		{"cluster", redistest.StartCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			prefix := redistest.Prefix(t)
			pub := newBus(t, srv.NewClient(t), prefix, secret)
			sub := newBus(t, srv.NewClient(t), prefix, secret)
			const publishers, each = 32, 200
			got := make(chan []byte, publishers*each)
			if _, err := sub.Subscribe("n", func(m []byte) { got <- bytes.Clone(m) }); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for p := range publishers {
				wg.Go(func() {
					for i := range each {
						msg := fmt.Appendf(nil, "%d %d %s", p, i, strings.Repeat("x", i))
						if err := pub.Publish(context.Background(), "n", msg); err != nil {
							t.Errorf("publisher %d message %d: %v", p, i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			next := make([]int, publishers)
			for range publishers * each {
				m := receive(t, got)
				f := strings.SplitN(string(m), " ", 3)
				if len(f) != 3 {
					t.Fatalf("message %q is not one that was published", m)
				}
				p, _ := strconv.Atoi(f[0])
				i, _ := strconv.Atoi(f[1])
				pad := f[2]
				if p < 0 || p >= publishers {
					t.Fatalf("message %q names no publisher", m)
				}
				if i != next[p] || len(pad) != i {
					t.Fatalf("publisher %d: got message %d (%d bytes of padding), want message %d", p, i, len(pad), next[p])
				}
				next[p]++
			}
			if st := pub.Stats(); st.Published != publishers*each {
				t.Errorf("Stats.Published = %d, want %d", st.Published, publishers*each)
			}
		})
	}
}

// Close while publishes are queued and in flight: every call returns, and
// no goroutine is left.
func TestCloseWhilePublishing(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.NewClient(t)
	before := runtime.NumGoroutine()
	b, err := redisbus.New(client, redisbus.Options{Secret: secret, Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var closed, other atomic.Int64
	for range 16 {
		wg.Go(func() {
			for {
				err := b.Publish(context.Background(), "nobody", []byte("x"))
				switch {
				case errors.Is(err, bus.ErrClosed):
					closed.Add(1)
					return
				case errors.Is(err, bus.ErrNoSubscriber):
				default:
					other.Add(1)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	b.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(promptly):
		t.Fatal("publishers still blocked after Close")
	}
	if closed.Load() != 16 || other.Load() != 0 {
		t.Errorf("got %d ErrClosed of 16 and %d other errors", closed.Load(), other.Load())
	}
	leaktest.Check(t, before)
}
