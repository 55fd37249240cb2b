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

	"keyhole/messages"
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	Proxy      string             // proxy URL: ws://, wss:// (http:// and https:// also accepted)
	Target     string             // the private service, e.g. http://127.0.0.1:3000
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

	Transport http.RoundTripper // toward the service; default a pooled transport
	Logger    *slog.Logger
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
}

// ConnectPath is the proxy's link endpoint on its apex host.
const ConnectPath = "/_keyhole/connect"

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("client: no key")
	}
	target, err := url.Parse(cfg.Target)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("client: target %q: want a URL like http://127.0.0.1:3000", cfg.Target)
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
	if cfg.Transport == nil {
		t := NewTransport()
		if cfg.TargetInsecure {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		cfg.Transport = t
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, target: target, connect: connect}
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
	u, err := url.Parse(proxy)
	if err != nil {
		return "", fmt.Errorf("client: proxy %q: %w", proxy, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("client: proxy %q: want ws:// or wss://", proxy)
	}
	if u.Host == "" {
		return "", fmt.Errorf("client: proxy %q has no host", proxy)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + ConnectPath
	return u.String(), nil
}

// NewTransport returns the transport used toward the private service: a
// connection pool larger than any realistic concurrency, no compression
// added or removed, no environment proxy.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
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
func (c *Client) Run(ctx context.Context) error {
	defer c.wg.Wait()
	var old *session // told to go away, still serving until a new link is up
	backoff := c.cfg.MinBackoff
	// Until the first registration, retry about every MinBackoff: a proxy
	// that is still starting should not make the first URL wait. Growing
	// backoff spreads reconnects after an outage.
	connected := false
	for {
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
				err = s.err
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
		wait := jitter(backoff)
		if old != nil {
			c.log.Warn("new link failed; the drained one still serves", "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			c.log.Warn("link lost; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		}
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
		if connected {
			backoff = min(backoff*2, c.cfg.MaxBackoff)
		} else {
			backoff = min(backoff*2, 2*c.cfg.MinBackoff, c.cfg.MaxBackoff)
		}
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
