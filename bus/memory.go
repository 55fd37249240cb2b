package bus

import (
	"context"
	"fmt"
	"sync"
)

// Memory is a Bus for nodes in one process. Publish calls the subscriber's
// handler on the publisher's goroutine, so it costs one function call and
// no copy.
type Memory struct {
	mu     sync.RWMutex // protects subs and closed
	subs   map[string]*memorySub
	closed bool
}

var _ Bus = (*Memory)(nil)

// NewMemory returns an empty in-memory bus.
func NewMemory() *Memory {
	return &Memory{subs: make(map[string]*memorySub)}
}

func (m *Memory) Publish(ctx context.Context, node string, msg []byte) error {
	m.mu.RLock()
	s, closed := m.subs[node], m.closed
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if s == nil {
		return fmt.Errorf("publish to %q: %w", node, ErrNoSubscriber)
	}
	// The subscription's lock keeps delivery one at a time, as on Redis.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("publish to %q: %w", node, ErrNoSubscriber)
	}
	s.handle(msg)
	return nil
}

func (m *Memory) Subscribe(node string, handle func([]byte)) (Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if _, ok := m.subs[node]; ok {
		return nil, fmt.Errorf("bus: node %q already subscribed", node)
	}
	s := &memorySub{m: m, node: node, handle: handle}
	m.subs[node] = s
	return s, nil
}

func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

type memorySub struct {
	m      *Memory
	node   string
	handle func([]byte)

	mu     sync.Mutex // serialises deliveries; protects closed
	closed bool
}

func (s *memorySub) Close() error {
	s.m.mu.Lock()
	if s.m.subs[s.node] == s {
		delete(s.m.subs, s.node)
	}
	s.m.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Nodes lists the nodes subscribed now.
func (m *Memory) Nodes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	nodes := make([]string, 0, len(m.subs))
	for n := range m.subs {
		nodes = append(nodes, n)
	}
	return nodes
}

var _ Directory = (*Memory)(nil)
