// Package bustest is the contract every bus.Bus implementation passes. An
// implementation's tests call Run with a constructor of two handles that
// reach each other as two nodes would (the same in-memory Bus twice, or two
// Redis buses on one server).
package bustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/bus"
	"keyhole/internal/leaktest"
)

// Bounds that only catch hangs; none of them measures speed.
const (
	waitTimeout = 20 * time.Second // for messages that must arrive
	promptly    = 2 * time.Second  // for errors that must come at once
)

// Run runs the contract against buses made by newBus. newBus is called
// once per subtest; it registers its own cleanup. Closing a handle twice,
// or closing a and then b when they are the same Bus, must be harmless.
func Run(t *testing.T, newBus func(t *testing.T) (a, b bus.Bus)) {
	t.Run("Deliver", func(t *testing.T) { testDeliver(t, newBus) })
	t.Run("Order10k", func(t *testing.T) { testOrder(t, newBus) })
	t.Run("NoSubscriber", func(t *testing.T) { testNoSubscriber(t, newBus) })
	t.Run("Unsubscribe", func(t *testing.T) { testUnsubscribe(t, newBus) })
	t.Run("DuplicateSubscribe", func(t *testing.T) { testDuplicate(t, newBus) })
	t.Run("Close", func(t *testing.T) { testClose(t, newBus) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrent(t, newBus) })
	t.Run("NoGoroutineLeak", func(t *testing.T) { testNoLeak(t, newBus) })
}

func testDeliver(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	a, b := newBus(t)
	ctx := context.Background()
	payloads := [][]byte{
		[]byte("hello"),
		{},
		{0, 0xff, 0, '\r', '\n', 0x80},
		bytes.Repeat([]byte{0xab, 0xcd}, 32<<10),
	}
	// Both directions: b's node hears a, and a's node hears b.
	for _, dir := range []struct {
		name     string
		pub, sub bus.Bus
	}{{"a to b", a, b}, {"b to a", b, a}} {
		node := nodeName()
		in := newInbox()
		sub := mustSubscribe(t, dir.sub, node, in.handle)
		for _, p := range payloads {
			buf := bytes.Clone(p)
			if err := dir.pub.Publish(ctx, node, buf); err != nil {
				t.Fatalf("%s: publish %d bytes: %v", dir.name, len(p), err)
			}
			for i := range buf {
				buf[i] = 0x55 // the bus must not keep buf after Publish
			}
		}
		got := in.wait(t, len(payloads))
		for i, p := range payloads {
			if !bytes.Equal(got[i], p) {
				t.Errorf("%s: message %d: got %d bytes %.16x…, want %d bytes %.16x…", dir.name, i, len(got[i]), got[i], len(p), p)
			}
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("%s: close subscription: %v", dir.name, err)
		}
	}
}

func testOrder(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	const n = 10000
	a, b := newBus(t)
	node := nodeName()
	in := newInbox()
	mustSubscribe(t, b, node, in.handle)
	ctx := context.Background()
	msg := make([]byte, 16)
	for i := range n {
		binary.BigEndian.PutUint64(msg, uint64(i))
		if err := a.Publish(ctx, node, msg); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	got := in.wait(t, n)
	for i, m := range got {
		if len(m) != 16 {
			t.Fatalf("message %d: got %d bytes, want 16", i, len(m))
		}
		if seq := binary.BigEndian.Uint64(m); seq != uint64(i) {
			t.Fatalf("message %d: got sequence %d, want %d", i, seq, i)
		}
	}
	if in.overlapped.Load() {
		t.Error("got concurrent handler calls, want one at a time")
	}
}

func testNoSubscriber(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	a, b := newBus(t)
	// Somebody else is subscribed: that must not make an unknown node reachable.
	mustSubscribe(t, b, nodeName(), func([]byte) {})
	for _, p := range []bus.Bus{a, b} {
		start := time.Now()
		err := p.Publish(context.Background(), nodeName(), []byte("anyone?"))
		if !errors.Is(err, bus.ErrNoSubscriber) {
			t.Fatalf("publish to an unknown node: got %v, want ErrNoSubscriber", err)
		}
		if d := time.Since(start); d > promptly {
			t.Errorf("publish to an unknown node took %v, want under %v", d, promptly)
		}
	}
}

func testUnsubscribe(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	a, b := newBus(t)
	ctx := context.Background()
	node := nodeName()
	in := newInbox()
	sub := mustSubscribe(t, b, node, in.handle)
	if err := a.Publish(ctx, node, []byte("one")); err != nil {
		t.Fatalf("publish before unsubscribe: %v", err)
	}
	in.wait(t, 1)
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}
	err := a.Publish(ctx, node, []byte("two"))
	if !errors.Is(err, bus.ErrNoSubscriber) {
		t.Fatalf("publish after unsubscribe: got %v, want ErrNoSubscriber", err)
	}
	if got := in.len(); got != 1 {
		t.Fatalf("got %d messages after unsubscribe, want 1", got)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("second close: got %v, want nil", err)
	}

	// The name is free again.
	in2 := newInbox()
	mustSubscribe(t, b, node, in2.handle)
	if err := a.Publish(ctx, node, []byte("three")); err != nil {
		t.Fatalf("publish after subscribing again: %v", err)
	}
	if got := in2.wait(t, 1); string(got[0]) != "three" {
		t.Fatalf("got %q, want %q", got[0], "three")
	}
	if got := in.len(); got != 1 {
		t.Fatalf("closed handler got %d messages, want 1", got)
	}
}

func testDuplicate(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	a, b := newBus(t)
	node := nodeName()
	in := newInbox()
	mustSubscribe(t, b, node, in.handle)
	if sub, err := b.Subscribe(node, func([]byte) {}); err == nil {
		_ = sub.Close()
		t.Fatal("second Subscribe of one node on one bus: got nil error, want an error")
	}
	// The first subscription is untouched.
	if err := a.Publish(context.Background(), node, []byte("still here")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	in.wait(t, 1)
}

func testClose(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	a, b := newBus(t)
	ctx := context.Background()
	node := nodeName()
	sub := mustSubscribe(t, a, node, func([]byte) {})
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second close: got %v, want nil", err)
	}
	if err := a.Publish(ctx, node, []byte("x")); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("publish after close: got %v, want ErrClosed", err)
	}
	if s, err := a.Subscribe(nodeName(), func([]byte) {}); !errors.Is(err, bus.ErrClosed) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("subscribe after close: got %v, want ErrClosed", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription after its bus: got %v, want nil", err)
	}
	// The closed node is unreachable from the other one too.
	err := b.Publish(ctx, node, []byte("x"))
	if !errors.Is(err, bus.ErrNoSubscriber) && !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("publish to a closed node: got %v, want ErrNoSubscriber (or ErrClosed)", err)
	}
}

func testConcurrent(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	const publishers, perPublisher = 8, 250
	a, b := newBus(t)
	ctx := context.Background()
	node := nodeName()
	in := newInbox()
	mustSubscribe(t, b, node, in.handle)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Subscriptions come and go on both handles while messages flow.
	for _, p := range []bus.Bus{a, b} {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s, err := p.Subscribe(nodeName(), func([]byte) {})
				if err != nil {
					t.Errorf("churn subscribe %d: %v", i, err)
					return
				}
				_ = s.Close()
			}
		})
	}
	var pubs sync.WaitGroup
	for id := range publishers {
		p := []bus.Bus{a, b}[id%2]
		pubs.Go(func() {
			msg := make([]byte, 5)
			msg[0] = byte(id)
			for seq := range perPublisher {
				binary.BigEndian.PutUint32(msg[1:], uint32(seq))
				if err := p.Publish(ctx, node, msg); err != nil {
					t.Errorf("publisher %d message %d: %v", id, seq, err)
					return
				}
			}
		})
	}
	pubs.Wait()
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	next := make([]uint32, publishers)
	for i, m := range in.wait(t, publishers*perPublisher) {
		id, seq := m[0], binary.BigEndian.Uint32(m[1:])
		if seq != next[id] {
			t.Fatalf("message %d: publisher %d sequence %d, want %d", i, id, seq, next[id])
		}
		next[id]++
	}
	if in.overlapped.Load() {
		t.Error("got concurrent handler calls, want one at a time")
	}
}

func testNoLeak(t *testing.T, newBus func(*testing.T) (bus.Bus, bus.Bus)) {
	before := runtime.NumGoroutine()
	a, b := newBus(t)
	ctx := context.Background()
	var subs []bus.Subscription
	for i := range 4 {
		for _, dir := range []struct{ pub, sub bus.Bus }{{a, b}, {b, a}} {
			node := nodeName()
			in := newInbox()
			subs = append(subs, mustSubscribe(t, dir.sub, node, in.handle))
			if err := dir.pub.Publish(ctx, node, []byte{byte(i)}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			in.wait(t, 1)
		}
	}
	// Close half the subscriptions by hand; Close must end the rest.
	for _, s := range subs[:len(subs)/2] {
		if err := s.Close(); err != nil {
			t.Fatalf("close subscription: %v", err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	leaktest.Check(t, before)
}

// inbox records what a handler received. Its handle never blocks for long.
type inbox struct {
	mu      sync.Mutex // protects msgs
	msgs    [][]byte
	changed chan struct{} // capacity 1: a message arrived since the last look

	inFlight   atomic.Int32
	overlapped atomic.Bool
}

func newInbox() *inbox {
	return &inbox{changed: make(chan struct{}, 1)}
}

func (in *inbox) handle(msg []byte) {
	if in.inFlight.Add(1) != 1 {
		in.overlapped.Store(true)
	}
	defer in.inFlight.Add(-1)
	in.mu.Lock()
	in.msgs = append(in.msgs, bytes.Clone(msg))
	in.mu.Unlock()
	select {
	case in.changed <- struct{}{}:
	default:
	}
}

func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

// wait returns the first n messages once they have all arrived.
func (in *inbox) wait(t testing.TB, n int) [][]byte {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		in.mu.Lock()
		got := len(in.msgs)
		if got >= n {
			msgs := in.msgs[:n:n]
			in.mu.Unlock()
			return msgs
		}
		in.mu.Unlock()
		select {
		case <-in.changed:
		case <-timeout:
			t.Fatalf("got %d messages within %v, want %d", got, waitTimeout, n)
		}
	}
}

func mustSubscribe(t testing.TB, b bus.Bus, node string, handle func([]byte)) bus.Subscription {
	t.Helper()
	sub, err := b.Subscribe(node, handle)
	if err != nil {
		t.Fatalf("subscribe %q: %v", node, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// nodeName returns a node name no other test uses.
func nodeName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "node-" + hex.EncodeToString(b[:])
}
