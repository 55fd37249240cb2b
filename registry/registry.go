// Package registry records which proxy node holds the links of which
// tunnel, so a request arriving at any node can find one. The in-memory
// Registry here serves nodes in one process; package registry/redisreg
// serves nodes that share a Redis, with routes that expire when a node
// stops renewing them.
package registry

import (
	"context"
	"errors"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("registry: closed")

// Registry maps tunnel labels to the nodes that hold them.
type Registry interface {
	// Announce records that node holds at least one link for label. It
	// stays recorded until Withdraw (or, for a shared registry, until the
	// node stops renewing it).
	Announce(ctx context.Context, label, node string) error

	// Withdraw removes node's announcement for label.
	Withdraw(ctx context.Context, label, node string) error

	// Lookup returns the nodes holding label, in no particular order; none
	// and a nil error when no node holds it.
	Lookup(ctx context.Context, label string) ([]string, error)

	Close() error
}

// Counted is implemented by registries that count what they did, for the
// proxy's metrics: each name (lower case, underscores) with its value.
type Counted interface {
	Counters() []Counter
}

// Counter is one named count.
type Counter struct {
	Name  string
	Help  string // what it counts, a sentence
	Value uint64
}
