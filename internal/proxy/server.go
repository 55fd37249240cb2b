// Package proxy is keyhole's proxy: it accepts client links on the apex
// host of its domain, verifies each client's key, and routes visitors'
// requests for <label>.<domain> to the client with that key, on this node
// or, through the bus, on another one.
package proxy

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"

	"keyhole/bus"
	"keyhole/internal/identity"
	"keyhole/limiter"
	"keyhole/messages"
	"keyhole/registry"
)

// ConnectPath is where clients open their link, on the apex host.
const ConnectPath = "/_keyhole/connect"

// Config configures a Server. Zero values mean the defaults.
type Config struct {
	Domain         string        // tunnels are <label>.<Domain>; default "localhost"
	PublicScheme   string        // scheme visitors use; default "http"
	PublicPort     string        // port visitors use, "" for the scheme's default
	RequestTimeout time.Duration // wait for a response head; default 30 s
	MaxBody        int64         // request and response body and WebSocket message cap; default 512,000 bytes, NoCap for none
	ClientRate     float64       // messages/s one client link may send; 0 = unlimited
	TunnelRate     float64       // visitor requests/s per hostname; 0 = unlimited
	TrustedProxies []netip.Prefix
	PingInterval   time.Duration // link keepalive; default 10 s
	LinkTimeout    time.Duration // drop a silent link; default 20 s
	// Allow, when set, says which labels may register: a client whose
	// verified key it refuses gets ErrNotAllowed. Nil allows every key.
	Allow func(label string) bool
	// HostOnlyCookies removes from the services' Set-Cookie fields any
	// Domain attribute but the tunnel's own hostname, so a cookie set by
	// header stays with its tunnel. It cannot stop a tunnel's page from
	// setting parent-domain cookies with script; only the Public Suffix
	// List or a registrable domain per deployment isolates tenants.
	HostOnlyCookies bool
	// RegisterRate and RegisterBurst limit the registrations one source
	// address may start (a token bucket, checked before the link's
	// upgrade, answered 429 with Retry-After); RegisterGlobalRate and
	// RegisterGlobalBurst limit all addresses together. A rate of 0 is
	// unlimited, a burst of 0 two seconds' worth of its rate.
	RegisterRate        float64
	RegisterBurst       int
	RegisterGlobalRate  float64
	RegisterGlobalBurst int
	// MaxPending bounds the sockets sent a challenge that have not yet
	// answered; past it the longest waiting is dropped. Default
	// DefaultMaxPending.
	MaxPending int
	// PrivateMetrics keeps /_keyhole/metrics off the apex host: only
	// OpsHandler serves it, on an address of the operator's choosing.
	PrivateMetrics bool

	Node     string            // this node's name on the bus; default random
	Bus      bus.Bus           // default: a private in-memory bus (single node)
	Registry registry.Registry // default: a private in-memory registry
	Logger   *slog.Logger
}

// NoCap as Config.MaxBody lifts the cap on bodies and WebSocket messages.
const NoCap = math.MaxInt64

// Server is an http.Handler serving the apex host and every tunnel host.
type Server struct {
	cfg      Config
	log      *slog.Logger
	apex     http.Handler
	upgrader websocket.Upgrader
	tunnelRL *limiter.Tunnels
	regRL    *limiter.Registrations
	pending  pending // sockets waiting to register
	stats    Stats
	sub      bus.Subscription

	ctx    context.Context // ends when the server closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server owns
	drain  atomic.Bool

	mu      sync.RWMutex // protects tunnels
	tunnels map[string]*tunnel

	remote remoteStreams // streams this node serves for visitors on other nodes, and the reverse
	routes routeCache    // which other nodes hold a label, for a moment
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	cfg.Domain = strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	if cfg.PublicScheme == "" {
		cfg.PublicScheme = "http"
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = limiter.DefaultMaxBody
	}
	if cfg.MaxBody < 0 {
		cfg.MaxBody = NoCap
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Node == "" {
		cfg.Node = rand.Text()[:12]
	}
	if len(cfg.Node) > 255 {
		return nil, fmt.Errorf("node name of %d bytes: at most 255", len(cfg.Node))
	}
	if cfg.Bus == nil {
		cfg.Bus = bus.NewMemory()
	}
	if cfg.Registry == nil {
		cfg.Registry = registry.NewMemory()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("node", cfg.Node),
		tunnelRL: limiter.NewTunnels(cfg.TunnelRate),
		regRL:    limiter.NewRegistrations(cfg.RegisterRate, cfg.RegisterBurst, cfg.RegisterGlobalRate, cfg.RegisterGlobalBurst),
		pending:  pending{max: cfg.MaxPending},
		tunnels:  make(map[string]*tunnel),
		upgrader: websocket.Upgrader{
			// ReadBufferSize stays zero: the link's WebSocket reads
			// from net/http's hijacked reader (see hijackTap).
			WriteBufferSize: messages.MaxFrame + 16,
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true },
		},
	}
	s.remote.init()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sub, err := cfg.Bus.Subscribe(cfg.Node, s.fromBus)
	if err != nil {
		return nil, fmt.Errorf("subscribe node %s: %w", cfg.Node, err)
	}
	s.sub = sub
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchNodes()
	}()
	r := chi.NewRouter()
	r.Get(ConnectPath, s.serveConnect)
	r.Get(HealthPath, s.serveHealth)
	if !cfg.PrivateMetrics {
		r.Get(MetricsPath, s.serveMetrics)
	}
	r.Get("/", s.serveIndex)
	s.apex = r
	return s, nil
}

// Paths the apex host and OpsHandler serve.
const (
	HealthPath  = "/healthz"
	MetricsPath = "/_keyhole/metrics"
)

// OpsHandler serves health and metrics alone, whatever the Host, for a
// listener on an internal address.
func (s *Server) OpsHandler() http.Handler {
	r := chi.NewRouter()
	r.Get(HealthPath, s.serveHealth)
	r.Get(MetricsPath, s.serveMetrics)
	return r
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Node is the server's name on the bus.
func (s *Server) Node() string { return s.cfg.Node }

// ServeHTTP routes by Host: <label>.<domain> goes to its tunnel; the apex
// host (or the proxy's IP address, as clients dialing an address send)
// serves links, health and metrics; anything else is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := canonicalHost(r.Host)
	if label, ok := s.labelOf(host); ok {
		s.serveTunnel(w, r, label, host)
		return
	}
	if host == s.cfg.Domain || isIP(host) {
		s.apex.ServeHTTP(w, r)
		return
	}
	s.stats.NotOurs.Add(1)
	s.fail(w, r, host, ErrNotOurs)
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}

// canonicalHost lower-cases a Host header and drops its port and any
// trailing dot: the one parse of the host that routing, limits and logs
// all use.
func canonicalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// labelOf returns the label of a tunnel hostname <label>.<domain>.
func (s *Server) labelOf(host string) (string, bool) {
	label, ok := strings.CutSuffix(host, "."+s.cfg.Domain)
	if !ok || !identity.ValidLabel(label) {
		return "", false
	}
	return label, true
}

// URL is the public URL of a tunnel.
func (s *Server) URL(label string) string { return s.publicURL(label + "." + s.cfg.Domain) }

// ApexURL is the public URL of the proxy's own host.
func (s *Server) ApexURL() string { return s.publicURL(s.cfg.Domain) }

func (s *Server) publicURL(host string) string {
	port := s.cfg.PublicPort
	if port == "" || (s.cfg.PublicScheme == "http" && port == "80") || (s.cfg.PublicScheme == "https" && port == "443") {
		return s.cfg.PublicScheme + "://" + host
	}
	return s.cfg.PublicScheme + "://" + net.JoinHostPort(host, port)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.drain.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.stats.WriteTo(w)
	if c, ok := s.cfg.Bus.(bus.Counted); ok {
		for _, n := range c.Counters() {
			fmt.Fprintf(w, "keyhole_bus_%s %d\n", n.Name, n.Value)
		}
	}
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "keyhole proxy for *.%s\nclients connect to %s\n", s.cfg.Domain, ConnectPath)
}

// fail answers a visitor with the status for err and a short message.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, host string, err error) {
	code := status(err)
	msg := err.Error()
	switch code {
	case http.StatusNotFound:
		msg = fmt.Sprintf("keyhole: %s: %v", host, err)
	case http.StatusBadGateway:
		if !strings.HasPrefix(msg, "keyhole client: ") { // the client's own message says who
			msg = "keyhole: " + msg
		}
	default:
		msg = "keyhole: " + msg
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// Drain tells every client to reconnect elsewhere (GoAway) and refuses new
// links. Links stay up, serving, until their clients have a new link on
// another node and close the old one; Drain waits for that until ctx is
// done. Close ends whatever is left.
func (s *Server) Drain(ctx context.Context) {
	s.drain.Store(true)
	for _, l := range s.allLinks() {
		l.goAway(s.ctx)
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for s.stats.LinksActive.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close ends every link and goroutine the server owns and withdraws its
// routes.
func (s *Server) Close() error {
	s.drain.Store(true)
	s.cancel()
	s.sub.Close()
	s.wg.Wait()
	return nil
}
