package client

import (
	"sync"
	"time"
)

// workers runs a session's stream handlers. A handler runs on a goroutine
// that has served streams before when one is idle, so it starts on a
// stack already grown to what a request needs; a goroutine of its own
// would grow (copy) its stack on every request. Workers that stay idle
// for a whole trimEvery end, so a burst leaves nothing behind.
type workers struct {
	running sync.WaitGroup // one per worker goroutine

	mu     sync.Mutex // protects the rest
	idle   []chan func()
	low    int // the fewest idle since the last trim: that many were not needed
	closed bool
	timer  *time.Timer
}

// maxIdleWorkers bounds the goroutines kept waiting for work.
const maxIdleWorkers = 64

// trimEvery is how often workers idle all the while are ended.
const trimEvery = 10 * time.Second

// run runs f on an idle worker, or on a new one.
func (w *workers) run(f func()) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		next := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.low = min(w.low, n-1)
		w.mu.Unlock()
		next <- f
		return
	}
	w.low = 0
	if w.timer == nil && !w.closed {
		w.timer = time.AfterFunc(trimEvery, w.trim)
	}
	w.mu.Unlock()
	w.running.Add(1)
	go w.work(f, make(chan func(), 1))
}

// work runs f, then what it is given, until it is told to end (nil) or
// the pool is full or closed.
func (w *workers) work(f func(), next chan func()) {
	defer w.running.Done()
	for f != nil {
		f()
		w.mu.Lock()
		if w.closed || len(w.idle) >= maxIdleWorkers {
			w.mu.Unlock()
			return
		}
		w.idle = append(w.idle, next)
		w.mu.Unlock()
		f = <-next
	}
}

// trim ends the workers that were idle since the last trim: the least
// recently used, at the bottom of the stack.
func (w *workers) trim() {
	w.mu.Lock()
	n := min(w.low, len(w.idle))
	ended := append([]chan func(){}, w.idle[:n]...)
	w.idle = append(w.idle[:0], w.idle[n:]...)
	w.low = len(w.idle)
	if len(w.idle) > 0 && !w.closed {
		w.timer.Reset(trimEvery)
	} else {
		w.timer = nil
	}
	w.mu.Unlock()
	for _, next := range ended {
		next <- nil
	}
}

// close ends the idle workers and waits for every worker to end; the
// caller has waited for the handlers, so none runs long.
func (w *workers) close() {
	w.mu.Lock()
	idle := w.idle
	w.idle, w.closed = nil, true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	for _, next := range idle {
		next <- nil
	}
	w.running.Wait()
}
