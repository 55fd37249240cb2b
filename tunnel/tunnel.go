package tunnel

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"keyhole/internal/client"
)

// Config configures a Tunnel. Zero values mean the defaults. Exactly one
// of Handler and Target names the service.
type Config struct {
	Proxy string             // proxy URL: ws:// or wss:// (http://, https:// and host:port also accepted); see ProxyURL
	Key   ed25519.PrivateKey // the tunnel's identity: its hostname derives from it

	// Handler serves every visitor request in this process, with no
	// listening port.
	Handler http.Handler
	// Target is a private service to forward to instead, e.g.
	// http://127.0.0.1:3000, localhost:3000 or 3000; see TargetURL.
	Target string

	HostHeader string      // "" passes the visitor's Host, "rewrite" sends the target's, anything else is sent as is
	Header     http.Header // set on every request toward the service
	// BasicAuth, when set, lists "user:password" pairs; a visitor must
	// present one (HTTP Basic authentication) or is answered 401, and the
	// service never sees the credentials.
	BasicAuth []string
	// TargetInsecure skips verifying the certificate of an https://
	// Target. It touches nothing toward the proxy.
	TargetInsecure bool
	// Transport carries HTTP requests toward a Target (WebSockets are
	// dialed directly); default NewServiceTransport(NewTransport()). It
	// must be nil with a Handler.
	Transport http.RoundTripper
	// WebSocketTap, when set, is called as each WebSocket opens on a
	// Target, with its handshake; tap (nil: none) then sees every piece
	// of every message both ways (the two ways at once, each way from
	// one goroutine) and must not keep p nor block, and done
	// (nil: none) is called with what closed the socket. It is how an
	// inspector records WebSocket sessions.
	WebSocketTap func(req *http.Request, resp *http.Response) (tap func(fromService, text bool, p []byte, end bool), done func(error))

	// OnURL is called with the public URL each time a link registers.
	OnURL func(url string)

	PingInterval time.Duration // link keepalive; default 10 s
	Timeout      time.Duration // drop a silent link; default 20 s
	MinBackoff   time.Duration // first reconnect delay; default 1 s
	MaxBackoff   time.Duration // longest reconnect delay; default 30 s
	// RetryPermanent keeps trying after failures that will not mend by
	// themselves, backing off to 5 minutes, instead of ending Run.
	RetryPermanent bool

	// Metrics, when set, receives the tunnel's collectors; otherwise
	// MetricsHandler serves a registry of the tunnel's own.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// handlerTarget is the target a Handler is reached at; the name only
// shows with HostHeader "rewrite".
const handlerTarget = "http://keyhole-tunnel"

// Tunnel publishes one service through a proxy. Run it once.
type Tunnel struct {
	c     *client.Client
	label string

	// With a Handler: the in-memory listener it is served on.
	ln      *memListener
	srv     *http.Server
	handler *trackedHandler
	tr      *client.ServiceTransport

	mu    sync.Mutex // protects url
	url   string
	ready chan struct{} // closed at the first registration
	once  sync.Once
	onURL func(string)
}

// New checks cfg and returns a Tunnel.
func New(cfg Config) (*Tunnel, error) {
	t := &Tunnel{ready: make(chan struct{}), onURL: cfg.OnURL}
	cc := client.Config{
		Proxy: cfg.Proxy, Target: cfg.Target, Key: cfg.Key,
		HostHeader: cfg.HostHeader, Header: cfg.Header, BasicAuth: cfg.BasicAuth,
		TargetInsecure: cfg.TargetInsecure, Transport: cfg.Transport,
		WebSocketTap: cfg.WebSocketTap,
		Ready:        t.registered,
		PingInterval: cfg.PingInterval, Timeout: cfg.Timeout,
		MinBackoff: cfg.MinBackoff, MaxBackoff: cfg.MaxBackoff,
		RetryPermanent: cfg.RetryPermanent,
		Metrics:        cfg.Metrics, Logger: cfg.Logger,
	}
	if cfg.Handler != nil {
		if err := t.serveHandler(&cc, cfg.Handler); err != nil {
			return nil, err
		}
	} else if cfg.Target == "" {
		return nil, errors.New("tunnel: no Handler and no Target")
	}
	c, err := client.New(cc)
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	t.c = c
	t.label = Label(cfg.Key) // client.New has checked the key
	return t, nil
}

// serveHandler points the client at h, served in memory.
func (t *Tunnel) serveHandler(cc *client.Config, h http.Handler) error {
	if cc.Target != "" || cc.Transport != nil {
		return errors.New("tunnel: Handler with a Target or a Transport")
	}
	t.ln = newMemListener()
	t.handler = &trackedHandler{h: h}
	log := cc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t.srv = &http.Server{Handler: t.handler, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	base := client.NewTransport()
	base.DialContext = t.ln.dial
	t.tr = client.NewServiceTransport(base)
	cc.Target, cc.Transport, cc.Dial = handlerTarget, t.tr, t.ln.dial
	return nil
}

// registered notes the URL of a new registration.
func (t *Tunnel) registered(url string) {
	t.mu.Lock()
	t.url = url
	t.mu.Unlock()
	t.once.Do(func() { close(t.ready) })
	if t.onURL != nil {
		t.onURL(url)
	}
}

// Run keeps the tunnel registered until ctx is done, and returns once
// everything it started has ended, the Handler's calls included. It
// returns ctx's error, or a *PermanentError for a failure that trying
// again will not mend (unless Config.RetryPermanent).
func (t *Tunnel) Run(ctx context.Context) error {
	if t.ln == nil {
		return t.c.Run(ctx)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		t.srv.Serve(t.ln)
	}()
	err := t.c.Run(ctx)
	t.tr.CloseIdleConnections()
	t.srv.Close()
	t.ln.Close()
	t.handler.wait()
	<-served
	return err
}

// URL returns the public URL, or "" before the first registration.
func (t *Tunnel) URL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.url
}

// Ready is closed when the tunnel has registered for the first time.
func (t *Tunnel) Ready() <-chan struct{} { return t.ready }

// Label returns the label of the tunnel's key, the first part of its
// hostname.
func (t *Tunnel) Label() string { return t.label }

// LinkUp reports whether a registered link is up.
func (t *Tunnel) LinkUp() bool { return t.c.LinkUp() }

// MetricsHandler serves the tunnel's metrics in the Prometheus format
// (nothing when Config.Metrics is set).
func (t *Tunnel) MetricsHandler() http.Handler { return t.c.MetricsHandler() }

// TargetURL reads a target as people type one: a port alone is
// http://127.0.0.1:port, host:port is http://host:port; anything else
// must be an http:// or https:// URL with a host.
func TargetURL(s string) (*url.URL, error) { return client.TargetURL(s) }

// ProxyURL reads a proxy address: ws:// or wss:// (http:// and https://
// taken as those), and host:port as ws://host:port.
func ProxyURL(s string) (*url.URL, error) { return client.ProxyURL(s) }

// NewTransport returns the default transport toward a Target: a
// connection pool larger than any realistic concurrency, no compression
// added or removed, no environment proxy. Wrap it to watch or change
// what goes to the service.
func NewTransport() *http.Transport { return client.NewTransport() }

// NewServiceTransport returns the transport a tunnel uses by default
// toward its Target: requests with no body to a plain http:// service are
// written and answered on the goroutine that carries them, which spares
// each small request three goroutine hand-offs; everything else goes
// through base, whose dialer and idle limits the direct requests share.
func NewServiceTransport(base *http.Transport) http.RoundTripper {
	return client.NewServiceTransport(base)
}
