package client

import (
	"runtime"
	"sync"
	"testing"

	"keyhole/internal/leaktest"
)

// TestWorkersReuseTrimAndClose: handlers run one after another reuse one
// goroutine; of the idle workers a burst leaves, a trim ends those not
// used since the trim before; close ends the rest.
func TestWorkersReuseTrimAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	var w workers
	done := make(chan struct{})
	for range 10 {
		w.run(func() { done <- struct{}{} })
		<-done
		for w.idleCount() != 1 { // the worker is on its way back
			runtime.Gosched()
		}
	}
	if n := runtime.NumGoroutine() - before; n != 1 {
		t.Fatalf("%d goroutines for 10 handlers one after another, want 1", n)
	}

	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 20 {
		wg.Add(1)
		w.run(func() { defer wg.Done(); <-release })
	}
	close(release)
	wg.Wait()
	for w.idleCount() != 20 {
		runtime.Gosched()
	}
	w.trim() // counts from here: nothing ends yet
	if n := w.idleCount(); n != 20 {
		t.Fatalf("%d idle after the first trim, want 20", n)
	}
	w.run(func() { done <- struct{}{} }) // one is used between the trims
	<-done
	for w.idleCount() != 20 {
		runtime.Gosched()
	}
	w.trim()
	if n := w.idleCount(); n != 1 {
		t.Fatalf("%d idle after the second trim, want the one used since the first", n)
	}
	w.close()
	w.trim() // a late trim after close does nothing
	leaktest.Check(t, before)
}

// idleCount reports how many workers wait for work.
func (w *workers) idleCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.idle)
}
