package registry

import (
	"context"
	"sync"
)

// Blocklist records the keys (by label) the proxy's operator has blocked:
// their registrations are refused on every node that shares it.
type Blocklist interface {
	Block(ctx context.Context, label string) error
	Unblock(ctx context.Context, label string) error
	// Blocked reports whether label is blocked; an error means the
	// answer is unknown.
	Blocked(ctx context.Context, label string) (bool, error)
}

// MemoryBlocklist is a Blocklist for nodes in one process.
type MemoryBlocklist struct {
	mu     sync.RWMutex // protects labels
	labels map[string]struct{}
}

var _ Blocklist = (*MemoryBlocklist)(nil)

// NewMemoryBlocklist returns an empty in-memory blocklist.
func NewMemoryBlocklist() *MemoryBlocklist {
	return &MemoryBlocklist{labels: make(map[string]struct{})}
}

func (m *MemoryBlocklist) Block(_ context.Context, label string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.labels[label] = struct{}{}
	return nil
}

func (m *MemoryBlocklist) Unblock(_ context.Context, label string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.labels, label)
	return nil
}

func (m *MemoryBlocklist) Blocked(_ context.Context, label string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.labels[label]
	return ok, nil
}
