// Package client is keyhole's client: it keeps a link to a proxy up,
// proves its key, and answers the requests visitors send to its hostname
// from a private service. Client is the reconnect loop; session is one
// registered link.
package client

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"keyhole/internal/identity"
	"keyhole/internal/sock"
	"keyhole/messages"
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	Proxy      string             // proxy URL: ws://, wss:// (http:// and https:// also accepted; host:port is ws://); see ProxyURL
	Target     string             // the private service, e.g. http://127.0.0.1:3000, localhost:3000 or 3000; see TargetURL
	Key        ed25519.PrivateKey // the client's identity
	HostHeader string             // "" passes the visitor's Host, "rewrite" sends the target's, anything else is sent as is
	Header     http.Header        // set on every request toward the service
	// BasicAuth, when set, lists "user:password" pairs; a visitor must
	// present one (HTTP Basic authentication) or is answered 401 by the
	// client, and the service never sees the credentials.
	BasicAuth []string
	// TargetInsecure skips verifying the certificate of an https://
	// target: for a local service with a self-signed certificate. It
	// touches nothing toward the proxy.
	TargetInsecure bool

	// Ready is called with the public URL each time a link registers.
	Ready func(url string)

	PingInterval time.Duration // link keepalive; default 10 s
	Timeout      time.Duration // drop a silent link; default 20 s
	MinBackoff   time.Duration // first reconnect delay; default 1 s
	MaxBackoff   time.Duration // longest reconnect delay; default 30 s
	// RetryPermanent keeps trying after failures that will not mend by
	// themselves (a refused key, a server that is no keyhole proxy),
	// backing off to PermanentMaxBackoff, instead of ending Run.
	RetryPermanent bool

	// Transport carries HTTP requests toward the service; default a
	// ServiceTransport over NewTransport, dialing with Dial.
	Transport http.RoundTripper
	// Dial opens connections toward the service: WebSocket handshakes,
	// and HTTP requests of the default Transport. Default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Metrics, when set, receives the client's collectors instead of a
	// registry of its own (MetricsHandler then serves nothing): several
	// clients in one process share one registry, each wrapped with its
	// own labels.
	Metrics prometheus.Registerer
	// WebSocketTap, when set, is called as each WebSocket opens on the
	// service, with its handshake; tap (nil: none) then sees every piece
	// of every message both ways and must not keep p nor block, and done
	// (nil: none) is called with what closed the socket.
	WebSocketTap func(req *http.Request, resp *http.Response) (tap func(fromService, text bool, p []byte, end bool), done func(error))
	Logger       *slog.Logger
}

// Client publishes one private service through a proxy.
type Client struct {
	cfg      Config
	log      *slog.Logger
	target   *url.URL
	connect  string // the proxy's link endpoint
	instance [messages.InstanceSize]byte
	wg       sync.WaitGroup // sessions draining after a GoAway
	auth     basicAuth      // nil: no credentials needed
	stats    stats
	reg      *prometheus.Registry
	label    string // the key's label, for messages
}

// ConnectPath is the proxy's link endpoint on its apex host.
const ConnectPath = "/_keyhole/connect"

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("client: no key")
	}
	target, err := TargetURL(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("client: target %q: %w", cfg.Target, err)
	}
	connect, err := connectURL(cfg.Proxy)
	if err != nil {
		return nil, err
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Dial == nil {
		cfg.Dial = dialService
	}
	if cfg.Transport == nil {
		t := NewTransport()
		t.DialContext = cfg.Dial
		if cfg.TargetInsecure {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		cfg.Transport = NewServiceTransport(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, target: target, connect: connect,
		label: identity.Label(cfg.Key.Public().(ed25519.PublicKey))}
	if len(cfg.BasicAuth) > 0 {
		if c.auth, err = newBasicAuth(cfg.BasicAuth); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	crand.Read(c.instance[:])
	c.initMetrics()
	return c, nil
}

// connectURL turns the --proxy value into the link endpoint.
func connectURL(proxy string) (string, error) {
	u, err := ProxyURL(proxy)
	if err != nil {
		return "", fmt.Errorf("client: proxy %q: %w", proxy, err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + ConnectPath
	return u.String(), nil
}

// serviceDialer dials the private service.
var serviceDialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

// dialService dials the private service with serviceDialer, for sockets
// that read and write with raw system calls (package sock).
var dialService = sock.Dialer(serviceDialer.DialContext)

// NewTransport returns the transport used toward the private service: a
// connection pool larger than any realistic concurrency, no compression
// added or removed, no environment proxy.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:           dialService,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: 0,
		// Body reads are whole chunks, larger than the read buffer, so
		// they go straight from the socket into the frame.
		WriteBufferSize: 64 << 10,
		ReadBufferSize:  16 << 10,
	}
}

// Run keeps a link registered until ctx is done. It reconnects with
// jittered exponential backoff after a failure. After a GoAway it opens a
// new link at once and keeps the old one serving until the new one is up;
// then it leaves the old one, which the proxy closes after its last
// request. If the old one closes before a new one is up, it tries again at
// once.
//
// A failure that trying again will not mend (a refused key, an endpoint
// that is no keyhole proxy; see PermanentError) ends Run with that error,
// unless Config.RetryPermanent is set or a drained link still serves.
func (c *Client) Run(ctx context.Context) error {
	defer c.wg.Wait()
	var old *session // told to go away, still serving until a new link is up
	backoff := c.cfg.MinBackoff
	connected := false // a link has been up
	for {
		lost := false // the failure is a link that was up and ended
		s, err := c.dial(ctx)
		if err == nil {
			connected = true
			c.stats.registered.Add(1)
			c.stats.links.Add(1)
			if old != nil {
				c.goTracked(old.drain)
				old = nil
			}
			backoff = c.cfg.MinBackoff
			c.goTracked(func() {
				defer c.stats.links.Add(-1)
				s.run(ctx)
			})
			select {
			case <-s.done:
				err, lost = s.err, true
			case <-s.goAway:
				c.log.Info("proxy is draining; opening a new link")
				old = s
				continue
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.stats.failures.Add(1)
		var perm *PermanentError
		if !lost {
			perm = c.permanent(err)
		}
		if perm != nil && old == nil && !c.cfg.RetryPermanent {
			return perm
		}
		wait := max(jitter(backoff), retryAfter(err)) // the proxy's own word, if it gave one
		c.logRetry(err, perm, lost, connected, old != nil, wait)
		// While a drained link still serves, failed attempts back off as
		// usual; once it ends the client has no link at all, so it tries
		// again at once.
		var oldDone <-chan struct{}
		if old != nil {
			oldDone = old.done
		}
		select {
		case <-time.After(wait):
		case <-oldDone:
			c.log.Warn("the drained link has closed; reconnecting now")
			old = nil
			backoff = c.cfg.MinBackoff
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = c.nextBackoff(backoff, connected, perm != nil)
	}
}

// PermanentMaxBackoff is the longest wait between attempts that fail
// permanently, with Config.RetryPermanent.
const PermanentMaxBackoff = 5 * time.Minute

// nextBackoff doubles the wait. Until the first registration it stays
// near MinBackoff: a proxy that is still starting should not make the
// first URL wait. After that it grows to MaxBackoff, which spreads
// reconnects after an outage; a permanent failure grows to
// PermanentMaxBackoff.
func (c *Client) nextBackoff(d time.Duration, connected, permanent bool) time.Duration {
	switch {
	case permanent:
		return min(d*2, max(PermanentMaxBackoff, c.cfg.MaxBackoff))
	case connected:
		return min(d*2, c.cfg.MaxBackoff)
	default:
		return min(d*2, 2*c.cfg.MinBackoff, c.cfg.MaxBackoff)
	}
}

// logRetry says why the client waits before trying again: a link that
// was up and ended is lost; a link that never came up failed to connect.
func (c *Client) logRetry(err error, perm *PermanentError, lost, connected, draining bool, wait time.Duration) {
	in := wait.Round(time.Millisecond)
	switch {
	case draining:
		c.log.Warn("new link failed; the drained one still serves", "err", err, "retry_in", in)
	case lost:
		c.log.Warn("link lost; reconnecting", "err", err, "in", in)
	case perm != nil:
		c.log.Error("cannot register; retrying", "cause", perm.Cause, "detail", perm.Detail, "fix", perm.Fix, "retry_in", in)
	case connected:
		c.log.Warn("reconnecting failed; retrying", "err", err, "in", in)
	default:
		c.log.Warn("connecting failed; retrying", "err", err, "in", in)
	}
}

// goTracked runs f on a goroutine Run waits for before it returns.
func (c *Client) goTracked(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// jitter spreads d over [d/2, d) so clients do not reconnect in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
