// Package registrytest is the contract every registry.Registry
// implementation passes. An implementation's tests call Run with a
// constructor of two handles that share their routes as two nodes would
// (the same in-memory Registry twice, or two Redis registries on one
// server).
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"keyhole/internal/leaktest"
	"keyhole/registry"
)

// Run runs the contract against registries made by newRegistry, which is
// called once per subtest and registers its own cleanup. Closing a handle
// twice, or closing a and then b when they are the same Registry, must be
// harmless.
func Run(t *testing.T, newRegistry func(t *testing.T) (a, b registry.Registry)) {
	t.Run("AnnounceLookupWithdraw", func(t *testing.T) { testBasic(t, newRegistry) })
	t.Run("TwoNodesOneLabel", func(t *testing.T) { testTwoNodes(t, newRegistry) })
	t.Run("LabelsIsolated", func(t *testing.T) { testIsolation(t, newRegistry) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, newRegistry) })
	t.Run("Close", func(t *testing.T) { testClose(t, newRegistry) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newRegistry) })
	t.Run("NoGoroutineLeak", func(t *testing.T) { testNoLeak(t, newRegistry) })
}

func testBasic(t *testing.T, newRegistry func(*testing.T) (registry.Registry, registry.Registry)) {
	a, b := newRegistry(t)
	label := newLabel()
	expect(t, b, label)
	announce(t, a, label, "node-a")
	expect(t, a, label, "node-a")
	expect(t, b, label, "node-a")
	withdraw(t, a, label, "node-a")
	expect(t, a, label)
	expect(t, b, label)
}

func testTwoNodes(t *testing.T, newRegistry func(*testing.T) (registry.Registry, registry.Registry)) {
	a, b := newRegistry(t)
	label := newLabel()
	announce(t, a, label, "node-a")
	announce(t, b, label, "node-b")
	expect(t, a, label, "node-a", "node-b")
	expect(t, b, label, "node-a", "node-b")
	withdraw(t, a, label, "node-a")
	expect(t, a, label, "node-b")
	expect(t, b, label, "node-b")
	withdraw(t, b, label, "node-b")
	expect(t, b, label)
}

func testIsolation(t *testing.T, newRegistry func(*testing.T) (registry.Registry, registry.Registry)) {
	a, b := newRegistry(t)
	l1, l2, l3 := newLabel(), newLabel(), newLabel()
	announce(t, a, l1, "node-a")
	announce(t, b, l2, "node-b")
	expect(t, b, l1, "node-a")
	expect(t, a, l2, "node-b")
	expect(t, a, l3)
	withdraw(t, a, l1, "node-a")
	expect(t, b, l1)
	expect(t, b, l2, "node-b")
}

func testIdempotent(t *testing.T, newRegistry func(*testing.T) (registry.Registry, registry.Registry)) {
	a, b := newRegistry(t)
	label := newLabel()
	announce(t, a, label, "node-a")
	announce(t, a, label, "node-a")
	expect(t, b, label, "node-a")
	withdraw(t, a, label, "node-a")
	withdraw(t, a, label, "node-a")          // again
	withdraw(t, a, newLabel(), "node-a")     // never announced
	withdraw(t, b, label, "node-b-not-here") // another node's absent route
	expect(t, b, label)
}

func testClose(t *testing.T, newRegistry func(*testing.T) (registry.Registry, registry.Registry)) {
	a, b := newRegistry(t)
	ctx := context.Background()
	label := newLabel()
	announce(t, a, label, "node-a")
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second close: got %v, want nil", err)
	}
	if err := a.Announce(ctx, label, "node-a"); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("announce after close: got %v, want ErrClosed", err)
	}
	if err := a.Withdraw(ctx, label, "node-a"); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("withdraw after close: got %v, want ErrClosed", err)
	}
	if _, err := a.Lookup(ctx, label); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("lookup after close: got %v, want ErrClosed", err)
	}
	// The closed node's routes are gone for the other one (or the other
	// one is the same, closed, registry).
	nodes, err := b.Lookup(ctx, label)
	if !errors.Is(err, registry.ErrClosed) && (err != nil || len(nodes) != 0) {
		t.Fatalf("lookup of a closed node's label: got %q, %v; want none (or ErrClosed)", nodes, err)
	}
}

func testConcurrent(t *testing.T, newRegistry func(*testing.T) (registry.Registry, registry.Registry)) {
	const workers, rounds = 8, 50
	a, b := newRegistry(t)
	ctx := context.Background()
	shared := newLabel()
	var wg sync.WaitGroup
	for w := range workers {
		r := []registry.Registry{a, b}[w%2]
		node := fmt.Sprintf("node-%d", w)
		wg.Go(func() {
			own := newLabel()
			for i := range rounds {
				for _, err := range []error{
					r.Announce(ctx, shared, node),
					r.Announce(ctx, own, node),
					lookupErr(r.Lookup(ctx, shared)),
					r.Withdraw(ctx, own, node),
				} {
					if err != nil {
						t.Errorf("worker %d round %d: %v", w, i, err)
						return
					}
				}
			}
			if nodes, err := r.Lookup(ctx, own); err != nil || len(nodes) != 0 {
				t.Errorf("worker %d: own label after withdraw: got %q, %v; want none", w, nodes, err)
			}
		})
	}
	wg.Wait()
	want := make([]string, workers)
	for w := range want {
		want[w] = fmt.Sprintf("node-%d", w)
	}
	expect(t, a, shared, want...)
	expect(t, b, shared, want...)
}

func testNoLeak(t *testing.T, newRegistry func(*testing.T) (registry.Registry, registry.Registry)) {
	before := runtime.NumGoroutine()
	a, b := newRegistry(t)
	label := newLabel()
	announce(t, a, label, "node-a")
	announce(t, b, label, "node-b")
	expect(t, a, label, "node-a", "node-b")
	if err := a.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	leaktest.Check(t, before)
}

func announce(t testing.TB, r registry.Registry, label, node string) {
	t.Helper()
	if err := r.Announce(context.Background(), label, node); err != nil {
		t.Fatalf("announce %s on %s: %v", label, node, err)
	}
}

func withdraw(t testing.TB, r registry.Registry, label, node string) {
	t.Helper()
	if err := r.Withdraw(context.Background(), label, node); err != nil {
		t.Fatalf("withdraw %s on %s: %v", label, node, err)
	}
}

// expect checks that label is held by exactly want, in any order.
func expect(t testing.TB, r registry.Registry, label string, want ...string) {
	t.Helper()
	got, err := r.Lookup(context.Background(), label)
	if err != nil {
		t.Fatalf("lookup %s: %v", label, err)
	}
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("lookup %s: got %q, want %q", label, got, want)
	}
}

func lookupErr(_ []string, err error) error { return err }

// newLabel returns a label no other test uses.
func newLabel() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "label-" + hex.EncodeToString(b[:])
}
