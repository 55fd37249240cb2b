package inspect

import "sync"

// ring keeps the latest entries. An entry's id is its sequence number
// (from 1), so it is found in its slot without a search.
type ring struct {
	mu    sync.Mutex // protects slots and n
	slots []*entry
	n     uint64 // entries ever added; the newest has id n
}

func newRing(size int) *ring { return &ring{slots: make([]*entry, size)} }

// add gives e the next id and keeps it, forgetting the oldest entry once
// the ring is full. It returns the entry forgotten, if any.
func (r *ring) add(e *entry) (forgotten *entry) {
	r.mu.Lock()
	r.n++
	e.id = r.n
	slot := &r.slots[(r.n-1)%uint64(len(r.slots))]
	forgotten, *slot = *slot, e
	r.mu.Unlock()
	return forgotten
}

// get returns the entry of that id, or nil if it is unknown or forgotten.
func (r *ring) get(id uint64) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == 0 || id > r.n || r.n-id >= uint64(len(r.slots)) {
		return nil
	}
	return r.slots[(id-1)%uint64(len(r.slots))]
}

// newest returns up to limit entries, newest first; limit <= 0 means all.
func (r *ring) newest(limit int) []*entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(r.n, uint64(len(r.slots)))
	if limit > 0 && uint64(limit) < n {
		n = uint64(limit)
	}
	out := make([]*entry, 0, n)
	for id := r.n; id > r.n-n; id-- {
		out = append(out, r.slots[(id-1)%uint64(len(r.slots))])
	}
	return out
}
