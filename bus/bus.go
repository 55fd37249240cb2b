// Package bus carries messages between proxy nodes: a request that arrives
// at one node travels to the node holding the client's link, and the answer
// travels back. The in-memory Bus here joins nodes that live in one process
// (a single node, or several in tests); package bus/redisbus joins nodes
// that share a Redis.
//
// A node serving its own clients never uses the bus: it hands frames to the
// client's link directly.
package bus

import (
	"context"
	"errors"
)

// ErrNoSubscriber means no node listens under the name published to: the
// node is gone, and the caller should fail at once rather than wait.
var ErrNoSubscriber = errors.New("bus: no subscriber for node")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("bus: closed")

// Bus delivers opaque messages to named nodes.
//
// Delivery is at most once. Messages from one publishing goroutine to one
// node arrive in the order they were published, so callers that need order
// publish a stream's messages one after another. Anything lost must be
// detected by the caller (sequence numbers, timeouts) and turned into a
// prompt error.
type Bus interface {
	// Publish delivers msg to the node subscribed as node. It returns
	// ErrNoSubscriber when nobody listens under that name. The bus does not
	// retain msg after Publish returns.
	Publish(ctx context.Context, node string, msg []byte) error

	// Subscribe delivers every message published to node to handle, one at
	// a time and in order, until the Subscription is closed. handle must
	// not block and must not retain msg after it returns.
	Subscribe(node string, handle func(msg []byte)) (Subscription, error)

	Close() error
}

// Lossy is implemented by buses that know when messages to this process
// may have been lost: a subscription that had to reconnect, or a message
// dropped because its subscriber fell behind. Losses only grows; callers
// fail what was in flight when it moves, so a loss is a prompt error.
type Lossy interface {
	Losses() uint64
}

// Counted is implemented by buses that count what they did, for the
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

// Subscription ends a Subscribe.
type Subscription interface {
	Close() error
}

// Directory is implemented by buses that know which nodes are on them
// right now, so a node can ask all of them (the proxy's admin API does).
type Directory interface {
	// Nodes lists the nodes subscribed on the bus, this process's own
	// included, in no particular order.
	Nodes() []string
}

// Checked is implemented by buses that can tell when this node cannot
// take part in the cluster although the bus itself answers: a cluster
// secret that differs from the other nodes'. Ready returns nil when all
// is well, or an error saying what is wrong.
type Checked interface {
	Ready() error
}
