// Package inspect is the client's inspector: it records the requests that
// pass through a tunnel toward the private service, and the messages of
// its WebSockets, in a bounded ring, and serves them on a local web page
// and a JSON API, from which a request can be replayed to the service as
// it was or edited.
//
// It plugs in at the client's RoundTripper toward the service: Transport
// wraps it, teeing the bodies as they stream by, so that capture never
// holds back or buffers the service's answers. WebSocketTap does the same
// for WebSocket messages.
package inspect

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an Inspector. Zero values mean the defaults.
type Options struct {
	Requests int // requests kept, the oldest forgotten first; default 500
	BodyCap  int // bytes kept of each body and WebSocket message; default 64 KiB
	Messages int // WebSocket messages kept per socket, the latest; default 200
	// ReplayTimeout bounds one replay, its answer's body included;
	// default 30 s.
	ReplayTimeout time.Duration
	Logger        *slog.Logger
}

// Defaults of Options.
const (
	DefaultRequests = 500
	DefaultBodyCap  = 64 << 10
	DefaultMessages = 200
)

// Inspector records the traffic of the tunnels it wraps and serves it.
type Inspector struct {
	opts    Options
	log     *slog.Logger
	ring    *ring
	version atomic.Uint64 // bumped on every change the page should show

	// Pages waiting for a change (see awaitChange): waiters counts them,
	// so that a change with nobody waiting costs one atomic load; next is
	// closed at the next change, and made anew by the next waiter.
	waiters atomic.Int32
	waitMu  sync.Mutex
	next    chan struct{}

	mu      sync.Mutex // protects tunnels and srv
	tunnels map[string]*tunnel
	srv     *server
}

// tunnel is what the inspector knows of one tunnel.
type tunnel struct {
	name string
	next http.RoundTripper // toward the service; nil until Transport
	url  atomic.Pointer[string]
}

// New returns an Inspector with nothing recorded.
func New(opts Options) *Inspector {
	if opts.Requests <= 0 {
		opts.Requests = DefaultRequests
	}
	if opts.BodyCap <= 0 {
		opts.BodyCap = DefaultBodyCap
	}
	if opts.Messages <= 0 {
		opts.Messages = DefaultMessages
	}
	if opts.ReplayTimeout <= 0 {
		opts.ReplayTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Inspector{opts: opts, log: opts.Logger, ring: newRing(opts.Requests), tunnels: make(map[string]*tunnel)}
}

// tunnel returns the tunnel of that name, adding it if it is new.
func (in *Inspector) tunnel(name string) *tunnel {
	in.mu.Lock()
	defer in.mu.Unlock()
	t := in.tunnels[name]
	if t == nil {
		t = &tunnel{name: name}
		in.tunnels[name] = t
	}
	return t
}

// SetURL records the public URL of a tunnel, for the page; a client calls
// it from its Ready callback.
func (in *Inspector) SetURL(tunnel, url string) {
	in.tunnel(tunnel).url.Store(&url)
	in.changed()
}

func (in *Inspector) changed() {
	in.version.Add(1)
	if in.waiters.Load() > 0 {
		in.waitMu.Lock()
		if in.next != nil {
			close(in.next)
			in.next = nil
		}
		in.waitMu.Unlock()
	}
}

// awaitChange waits until the version is no longer seen, or stop is
// closed.
func (in *Inspector) awaitChange(seen uint64, stop <-chan struct{}) {
	in.waiters.Add(1)
	defer in.waiters.Add(-1)
	in.waitMu.Lock()
	if in.next == nil {
		in.next = make(chan struct{})
	}
	next := in.next
	in.waitMu.Unlock()
	// A change from here on closes next: changed bumps the version before
	// it looks for waiters, and this one counted itself before it looks
	// at the version.
	if in.version.Load() != seen {
		return
	}
	select {
	case <-next:
	case <-stop:
	}
}
