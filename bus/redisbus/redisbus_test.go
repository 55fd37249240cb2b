package redisbus_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
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
	srv, prefix, recv, got := listen(t)

	raw := srv.NewClient(t)
	ctx := context.Background()
	channel := prefix + ":node:n"
	now := time.Now()
	msg := []byte("POST /admin")
	sender := handSender{1, 2, 3, 4, 5, 6, 7, 8}
	valid := handSeal(secret, channel, now, sender, 1, msg)
	flip := func(i int) []byte { b := bytes.Clone(valid); b[i] ^= 1; return b }
	forgeries := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"plain text", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"header and tag cut short", valid[:40]},
		{"version 1 (no counter)", handSealV1(secret, channel, now, msg)},
		{"version 2 (HMAC-SHA256)", handSealV2(secret, channel, now, sender, 1, msg)},
		{"unknown version", func() []byte { b := bytes.Clone(valid); b[0] = 4; return b }()},
		{"timestamp changed", flip(8)},
		{"sender id changed", flip(9)},
		{"counter changed", flip(24)},
		{"message bit flipped", flip(25)},
		{"tag bit flipped", flip(len(valid) - 1)},
		{"message appended", append(bytes.Clone(valid), 'x')},
		{"other secret", handSeal(otherSecret, channel, now, sender, 1, msg)},
		{"sealed for another node", handSeal(secret, prefix+":node:m", now, sender, 1, msg)},
		{"sealed for another prefix", handSeal(secret, "other:node:n", now, sender, 1, msg)},
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
	if n, err := raw.Publish(ctx, channel, handSeal(secret, channel, time.Now(), sender, 2, []byte("sealed by hand"))).Result(); err != nil || n != 1 {
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
	if want := uint64(len(forgeries) + 1); st.Forged != want || st.Delivered != 2 || st.Stale != 0 || st.Replayed != 0 {
		t.Fatalf("got Forged %d, Delivered %d, Stale %d, Replayed %d; want %d, 2, 0, 0", st.Forged, st.Delivered, st.Stale, st.Replayed, want)
	}
}

// TestStaleDropped sends authentic messages with timestamps just outside
// and just inside the window.
func TestStaleDropped(t *testing.T) {
	srv, prefix, recv, got := listen(t)
	raw := srv.NewClient(t)
	channel := prefix + ":node:n"
	sender := handSender{8, 7, 6, 5, 4, 3, 2, 1}
	var counter uint64
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
		counter++
		env := handSeal(secret, channel, time.Now().Add(-tc.age), sender, counter, []byte(tc.age.String()))
		if err := raw.Publish(context.Background(), channel, env).Err(); err != nil {
			t.Fatal(err)
		}
	}
	end := handSeal(secret, channel, time.Now(), sender, counter+1, []byte("end"))
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
	if st := recv.Stats(); st.Stale != 3 || st.Forged != 0 || st.Replayed != 0 {
		t.Fatalf("got Stale %d, Forged %d, Replayed %d; want 3, 0, 0", st.Stale, st.Forged, st.Replayed)
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
	got := collect(t, b, "b", 1000)
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
	got := collect(t, b, "b", 1000)

	srv.Freeze()
	start := time.Now()
	err := a.Publish(context.Background(), "b", []byte("frozen"))
	if d := time.Since(start); err == nil || d > promptly {
		srv.Thaw()
		t.Fatalf("publish to a frozen Redis: got %v after %v, want an error within %v", err, d, promptly)
	}
	srv.Thaw()
	waitFlowing(t, a, "b", got)
}

// A publish whose context has a deadline later than Options.Timeout waits
// on a Redis that stops for a while, rather than failing at the timeout.
func TestPublishWaitsUntilALaterDeadline(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	a := newBus(t, srv.NewClient(t), prefix, secret)
	b := newBus(t, srv.NewClient(t), prefix, secret)
	got := collect(t, b, "b", 10)
	waitFlowing(t, a, "b", got)

	const pause = 2 * redisbus.DefaultTimeout
	srv.Freeze()
	thawed := time.AfterFunc(pause, srv.Thaw)
	defer thawed.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*pause)
	defer cancel()
	start := time.Now()
	if err := a.Publish(ctx, "b", []byte("patient")); err != nil {
		t.Fatalf("publish with a deadline %v away, Redis stopped for %v: %v after %v", 3*pause, pause, err, time.Since(start))
	}
	for m := range got {
		if string(m) == "patient" {
			break
		}
	}
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

// listen starts a redis-server and a bus subscribed there as node "n";
// it returns the server, the prefix, the bus and what the bus receives.
func listen(t *testing.T) (*redistest.Server, string, *redisbus.Bus, <-chan []byte) {
	t.Helper()
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	recv := newBus(t, srv.NewClient(t), prefix, secret)
	got := collect(t, recv, "n", 100)
	return srv, prefix, recv, got
}

// collect subscribes b as node until the test ends, and returns a channel
// of copies of the messages it gets, which holds size.
func collect(t *testing.T, b *redisbus.Bus, node string, size int) <-chan []byte {
	t.Helper()
	got := make(chan []byte, size)
	sub, err := b.Subscribe(node, func(m []byte) { got <- bytes.Clone(m) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return got
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

// handSender is a sender id for hand-sealed envelopes.
type handSender [8]byte

// handSeal builds a version 3 envelope from the layout documented in
// envelope.go, independently of the package's own code.
func handSeal(secret []byte, channel string, ts time.Time, sender handSender, counter uint64, msg []byte) []byte {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("keyhole bus v1"))
	sk := hmac.New(sha256.New, k.Sum(nil))
	sk.Write([]byte("keyhole bus v3 sender"))
	sk.Write(sender[:])
	block, err := aes.NewCipher(sk.Sum(nil))
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	env := make([]byte, 25, 25+len(msg)+16)
	env[0] = 3
	binary.BigEndian.PutUint64(env[1:9], uint64(ts.UnixMilli()))
	copy(env[9:17], sender[:])
	binary.BigEndian.PutUint64(env[17:25], counter)
	env = append(env, msg...)
	input := binary.BigEndian.AppendUint32(nil, uint32(len(channel)))
	input = append(append(input, channel...), env...)
	iv := binary.BigEndian.AppendUint64(make([]byte, 4), counter)
	return gcm.Seal(env, iv, nil, input)
}

// handSealV2 builds an envelope of version 2, refused now: the header of
// version 3, then an HMAC-SHA256 tag over the channel, the header and the
// message, then the message.
func handSealV2(secret []byte, channel string, ts time.Time, sender handSender, counter uint64, msg []byte) []byte {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("keyhole bus v1"))
	key := k.Sum(nil)
	head := make([]byte, 25)
	head[0] = 2
	binary.BigEndian.PutUint64(head[1:9], uint64(ts.UnixMilli()))
	copy(head[9:17], sender[:])
	binary.BigEndian.PutUint64(head[17:25], counter)
	m := hmac.New(sha256.New, key)
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(channel))))
	m.Write([]byte(channel))
	m.Write(head)
	m.Write(msg)
	env := append(head, m.Sum(nil)...)
	return append(env, msg...)
}

// handSealV1 builds an envelope of version 1, which had no sender id or
// counter and is refused now: version, timestamp, then the tag over the
// channel, those 9 bytes and the message.
func handSealV1(secret []byte, channel string, ts time.Time, msg []byte) []byte {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("keyhole bus v1"))
	head := []byte{1}
	head = binary.BigEndian.AppendUint64(head, uint64(ts.UnixMilli()))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(channel))))
	m.Write([]byte(channel))
	m.Write(head)
	m.Write(msg)
	return append(append(head, m.Sum(nil)...), msg...)
}

// TestReplayDropped captures a genuine envelope off Redis, as anyone who
// can read the Redis could, and publishes the very same bytes again: the
// handler sees the message once, and the replay is counted.
func TestReplayDropped(t *testing.T) {
	srv, prefix, recv, got := listen(t)
	channel := prefix + ":node:n"
	ctx := context.Background()
	spy := srv.NewClient(t).Subscribe(ctx, channel)
	t.Cleanup(func() { _ = spy.Close() })
	if _, err := spy.Receive(ctx); err != nil { // the subscribe confirmation
		t.Fatal(err)
	}

	pub := newBus(t, srv.NewClient(t), prefix, secret)
	if err := pub.Publish(ctx, "n", []byte("POST /pay")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, got); string(m) != "POST /pay" {
		t.Fatalf("got %q, want POST /pay", m)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	captured, err := spy.ReceiveMessage(rctx)
	if err != nil {
		t.Fatalf("spy: %v", err)
	}

	raw := srv.NewClient(t)
	if n, err := raw.Publish(ctx, channel, captured.Payload).Result(); err != nil || n != 2 {
		t.Fatalf("replay: got %d receivers, %v; want 2 (the bus and the spy), nil", n, err)
	}
	// The replay reached Redis first; the subscriber reads in that order.
	if err := pub.Publish(ctx, "n", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, got); string(m) != "after" {
		t.Fatalf("got %q, want after: the replay was delivered", m)
	}
	if st := recv.Stats(); st.Replayed != 1 || st.Delivered != 2 || st.Forged != 0 || st.Stale != 0 {
		t.Fatalf("got Replayed %d, Delivered %d, Forged %d, Stale %d; want 1, 2, 0, 0", st.Replayed, st.Delivered, st.Forged, st.Stale)
	}
	var metric uint64
	for _, c := range recv.Counters() {
		if c.Name == "replayed" {
			metric = c.Value
		}
	}
	if metric != 1 {
		t.Fatalf("got counter replayed %d, want 1", metric)
	}
}

// TestReplayWindow drives one sender's window with hand-sealed envelopes:
// a counter is taken once, in any order within the window, never below it,
// and only authentic, fresh messages move the window.
func TestReplayWindow(t *testing.T) {
	srv, prefix, recv, got := listen(t)
	channel := prefix + ":node:n"
	ctx := context.Background()
	raw := srv.NewClient(t)

	const window = 8192 // counters a receiver remembers per sender, as documented
	s, other := handSender{'s'}, handSender{'o'}
	now := time.Now()
	steps := []struct {
		name    string
		payload []byte
		deliver bool
	}{
		{"first", handSeal(secret, channel, now, s, 100, []byte("100")), true},
		{"same sender and counter, other message", handSeal(secret, channel, now, s, 100, []byte("100 again")), false},
		{"ahead", handSeal(secret, channel, now, s, 102, []byte("102")), true},
		{"behind, in the window", handSeal(secret, channel, now, s, 101, []byte("101")), true},
		{"behind, seen", handSeal(secret, channel, now, s, 101, []byte("101 again")), false},
		{"a window ahead", handSeal(secret, channel, now, s, 102+window, []byte("102+window")), true},
		{"below the window, unseen", handSeal(secret, channel, now, s, 99, []byte("99")), false},
		{"oldest in the window, unseen", handSeal(secret, channel, now, s, 103, []byte("103")), true},
		{"another sender, same counter", handSeal(secret, channel, now, other, 100, []byte("other 100")), true},
		// Neither of these may move s's window far ahead, or the next
		// message would fall below it.
		{"forged far ahead", handSeal(otherSecret, channel, now, s, 1_000_000, []byte("forged")), false},
		{"stale far ahead", handSeal(secret, channel, now.Add(-time.Hour), s, 1_000_001, []byte("stale")), false},
		{"after the forgeries", handSeal(secret, channel, now, s, 200+window, []byte("200+window")), true},
	}
	var want []string
	for _, st := range steps {
		if n, err := raw.Publish(ctx, channel, st.payload).Result(); err != nil || n != 1 {
			t.Fatalf("%s: publish: got %d receivers, %v; want 1, nil", st.name, n, err)
		}
		if st.deliver {
			want = append(want, string(st.payload[25:len(st.payload)-16]))
		}
	}
	// Messages on one connection arrive in order: "after the forgeries"
	// is the last one.
	var delivered []string
	for len(delivered) < len(want) {
		delivered = append(delivered, string(receive(t, got)))
	}
	if strings.Join(delivered, ",") != strings.Join(want, ",") {
		t.Fatalf("got delivered %q, want %q", delivered, want)
	}
	if st := recv.Stats(); st.Replayed != 3 || st.Forged != 1 || st.Stale != 1 || st.Delivered != uint64(len(want)) {
		t.Fatalf("got Replayed %d, Forged %d, Stale %d, Delivered %d; want 3, 1, 1, %d", st.Replayed, st.Forged, st.Stale, st.Delivered, len(want))
	}
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
