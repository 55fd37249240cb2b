package tunnel

import (
	"net/http"
	"sync"
)

// trackedHandler counts the Handler's calls in progress, hijacked ones
// included, so Run can wait for them before it returns.
type trackedHandler struct {
	h  http.Handler
	wg sync.WaitGroup

	mu     sync.Mutex // protects closed, and wg.Add against wg.Wait
	closed bool
}

func (t *trackedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		http.Error(w, "tunnel closed", http.StatusServiceUnavailable)
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	t.h.ServeHTTP(w, r)
}

// wait refuses new calls and waits for those in progress.
func (t *trackedHandler) wait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
