// Package loadtool opens many keyhole client links from one process, as
// cheaply as a real link can be: each has a key of its own and registers
// as a client does (challenge, signed request, answer), over a real
// WebSocket, and is served by one goroutine that answers Pings, answers
// every HTTP request with an empty 200, and ignores everything else. It
// is for scale runs and tests that need thousands of tunnels on one
// machine; a real service belongs behind the real client.
package loadtool

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/client"
	"keyhole/internal/identity"
	"keyhole/messages"
)

// Options configure a Fleet.
type Options struct {
	// Proxies are the ws:// base URLs of the proxy nodes. Link i dials
	// Proxies[i%len], and after losing its link the next one.
	Proxies []string

	// Reconnect makes a link that was lost register again (on the next
	// proxy) after a short pause, as a client does.
	Reconnect bool

	// Dialing bounds the registrations under way at once. Default 64.
	Dialing int
}

// Fleet is a set of links opened by Open.
type Fleet struct {
	opts   Options
	links  []*Link
	wg     sync.WaitGroup // one per link goroutine
	cancel context.CancelFunc

	Registered atomic.Int64 // registrations that succeeded, reconnections included
	Lost       atomic.Int64 // links that ended while the fleet ran
	Served     atomic.Int64 // HTTP requests answered
}

// Link is one tunnel of the fleet.
type Link struct {
	key   ed25519.PrivateKey
	label string
	next  int // index into Options.Proxies of the next proxy to dial

	mu   sync.Mutex // protects node
	node string     // the proxy URL the link is registered on now, "" while down
}

// Label is the link's tunnel label.
func (l *Link) Label() string { return l.label }

// Node is the proxy the link is registered on now, "" while it is down.
func (l *Link) Node() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.node
}

func (l *Link) setNode(n string) {
	l.mu.Lock()
	l.node = n
	l.mu.Unlock()
}

// dialer keeps each link's buffers small: idle links hold nothing
// larger, and the frames they read and write are small.
var dialer = websocket.Dialer{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   1024,
	WriteBufferSize:  1024,
	WriteBufferPool:  &sync.Pool{},
}

// Open registers n links and returns once all are up (or the first error,
// after closing what it opened). The links live until Close.
func Open(ctx context.Context, n int, opts Options) (*Fleet, error) {
	if len(opts.Proxies) == 0 {
		return nil, errors.New("loadtool: no proxy")
	}
	if opts.Dialing <= 0 {
		opts.Dialing = 64
	}
	if err := RaiseFileLimit(uint64(n) + 1024); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{opts: opts, cancel: cancel, links: make([]*Link, n)}
	for i := range f.links {
		_, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("loadtool: key: %w", err)
		}
		f.links[i] = &Link{key: key, label: identity.Label(key.Public().(ed25519.PublicKey)), next: i % len(opts.Proxies)}
	}
	sem := make(chan struct{}, opts.Dialing)
	errs := make(chan error, n)
	var dialing sync.WaitGroup
	for _, l := range f.links {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		dialing.Add(1)
		go func() {
			defer func() { <-sem }()
			ws, err := f.dial(ctx, l)
			dialing.Done()
			if err != nil {
				errs <- err
				return
			}
			f.wg.Go(func() { f.serve(rctx, l, ws) })
		}()
	}
	dialing.Wait()
	close(errs)
	err := ctx.Err()
	for e := range errs {
		err = errors.Join(err, e)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("loadtool: open %d links: %w", n, err)
	}
	return f, nil
}

// Links returns the fleet's links.
func (f *Fleet) Links() []*Link { return f.links }

// Close ends every link and waits for their goroutines.
func (f *Fleet) Close() {
	f.cancel()
	f.wg.Wait()
}

// dial opens and registers one link on the next proxy in its turn.
func (f *Fleet) dial(ctx context.Context, l *Link) (*websocket.Conn, error) {
	proxy := f.opts.Proxies[l.next%len(f.opts.Proxies)]
	l.next++
	ws, _, err := dialer.DialContext(ctx, proxy+client.ConnectPath, http.Header{})
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", proxy, err)
	}
	var instance [messages.InstanceSize]byte
	_, _ = rand.Read(instance[:])
	if err := register(ws, l.key, instance); err != nil {
		ws.Close()
		return nil, fmt.Errorf("register on %s: %w", proxy, err)
	}
	l.setNode(proxy)
	f.Registered.Add(1)
	return ws, nil
}

// serve runs l until the fleet closes, registering it again after a loss
// if the fleet reconnects.
func (f *Fleet) serve(ctx context.Context, l *Link, ws *websocket.Conn) {
	for {
		stop := context.AfterFunc(ctx, func() { ws.Close() })
		err := f.answer(ws)
		stop()
		ws.Close()
		l.setNode("")
		if ctx.Err() != nil {
			return
		}
		f.Lost.Add(1)
		_ = err
		for {
			if !f.opts.Reconnect || !pause(ctx, 100*time.Millisecond) {
				return
			}
			if ws, err = f.dial(ctx, l); err == nil {
				break
			}
		}
	}
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// RaiseFileLimit raises the soft limit on open files to at least n, up to
// the hard limit.
func RaiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadtool: file limit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	lim.Cur = min(max(n, lim.Cur), lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadtool: raise the file limit to %d: %w", lim.Cur, err)
	}
	if lim.Cur < n {
		return fmt.Errorf("loadtool: file limit %d, want %d", lim.Cur, n)
	}
	return nil
}
