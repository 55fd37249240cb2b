package registry

import (
	"context"
	"sync"
)

// Memory is a Registry for nodes in one process.
type Memory struct {
	mu     sync.RWMutex // protects routes and closed
	routes map[string]map[string]struct{}
	closed bool
}

var _ Registry = (*Memory)(nil)

// NewMemory returns an empty in-memory registry.
func NewMemory() *Memory {
	return &Memory{routes: make(map[string]map[string]struct{})}
}

func (m *Memory) Announce(_ context.Context, label, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	nodes := m.routes[label]
	if nodes == nil {
		nodes = make(map[string]struct{}, 1)
		m.routes[label] = nodes
	}
	nodes[node] = struct{}{}
	return nil
}

func (m *Memory) Withdraw(_ context.Context, label, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if nodes := m.routes[label]; nodes != nil {
		delete(nodes, node)
		if len(nodes) == 0 {
			delete(m.routes, label)
		}
	}
	return nil
}

func (m *Memory) Lookup(_ context.Context, label string) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	nodes := make([]string, 0, len(m.routes[label]))
	for n := range m.routes[label] {
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
