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
	"golang.org/x/sync/singleflight"

	"keyhole/bus"
	"keyhole/internal/identity"
	"keyhole/internal/metrics"
	"keyhole/limiter"
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
	// AdminToken, when set, turns on the admin API on OpsHandler
	// (admin.go): every call must carry "Authorization: Bearer <token>".
	AdminToken string

	// Blocklist holds the keys blocked through the admin API; nodes that
	// share one refuse them all. Default: a private in-memory one.
	Blocklist registry.Blocklist

	Node     string            // this node's name on the bus; default random
	Bus      bus.Bus           // default: a private in-memory bus (single node)
	Registry registry.Registry // default: a private in-memory registry
	Logger   *slog.Logger
	// AccessLog gets one line at Info for every visitor request, at its
	// end, whatever the end; default Logger.
	AccessLog *slog.Logger
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
	metrics  promMetrics
	access   *slog.Logger

	joinMu sync.Mutex       // protects sub
	sub    bus.Subscription // nil until the node has joined its bus

	ctx    context.Context // ends when the server closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server owns
	drain  atomic.Bool
	// requests counts visitor HTTP requests in flight (see inFlight).
	requests atomic.Int64

	mu      sync.RWMutex // protects tunnels
	tunnels map[string]*tunnel

	remote  remoteStreams      // streams this node serves for visitors on other nodes, and the reverse
	routes  routeCache         // which other nodes hold a label, for a moment
	lookups singleflight.Group // registry lookups under way, by label
	gone    goneNodes          // other nodes found without a subscriber, for a few seconds
	ctl     control            // admin calls waiting for other nodes' answers

	blockMu     sync.Mutex // protects blockedKeys
	blockedKeys map[string]struct{}
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
	if cfg.Blocklist == nil {
		cfg.Blocklist = registry.NewMemoryBlocklist()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = cfg.Logger
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger.With("node", cfg.Node),
		access:      cfg.AccessLog.With("node", cfg.Node),
		tunnelRL:    limiter.NewTunnels(cfg.TunnelRate),
		regRL:       limiter.NewRegistrations(cfg.RegisterRate, cfg.RegisterBurst, cfg.RegisterGlobalRate, cfg.RegisterGlobalBurst),
		pending:     pending{max: cfg.MaxPending},
		tunnels:     make(map[string]*tunnel),
		blockedKeys: make(map[string]struct{}),
		upgrader: websocket.Upgrader{
			// ReadBufferSize stays zero: the link's WebSocket reads
			// from net/http's hijacked reader (see hijackTap). The
			// library writes only the Challenge and a refusal (the link
			// writes its frames itself, link/wire.go), so a small
			// buffer does: a large one is garbage that a burst of
			// registrations leaves behind in thousands.
			WriteBufferSize: 512,
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true },
		},
	}
	s.remote.init()
	s.initMetrics()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.join()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchNodes()
	}()
	r := chi.NewRouter()
	r.Get(ConnectPath, s.serveConnect)
	s.healthRoutes(r)
	r.Get(TLSAskPath, s.serveTLSAsk)
	if !cfg.PrivateMetrics {
		r.Method(http.MethodGet, MetricsPath, s.MetricsHandler())
		r.Method(http.MethodGet, MetricsAlias, s.MetricsHandler())
	}
	r.Get("/", s.serveIndex)
	s.apex = r
	return s, nil
}

// Paths the apex host and OpsHandler serve.
const (
	MetricsPath  = metrics.Path
	MetricsAlias = metrics.AliasPath // where metrics were first served
)

// OpsHandler serves health, metrics and TLSAskPath alone, whatever the
// Host, for a listener on an internal address.
func (s *Server) OpsHandler() http.Handler {
	r := chi.NewRouter()
	s.healthRoutes(r)
	r.Method(http.MethodGet, MetricsPath, s.MetricsHandler())
	r.Method(http.MethodGet, MetricsAlias, s.MetricsHandler())
	r.Get(TLSAskPath, s.serveTLSAsk)
	if s.cfg.AdminToken != "" {
		r.Route(AdminPath, s.adminRoutes)
	}
	return r
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Node is the server's name on the bus.
func (s *Server) Node() string { return s.cfg.Node }

// ServeHTTP routes by Host: <label>.<domain> goes to its tunnel; the apex
// host (or the proxy's IP address, as clients dialing an address send)
// serves links, health and metrics; anything else is 404.
//
// Every request but the apex host's own gets one access-log line at its
// end.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := canonicalHost(r.Host)
	label, ok := s.labelOf(host)
	if !ok && (host == s.cfg.Domain || isIP(host)) {
		s.apex.ServeHTTP(w, r)
		return
	}
	v := s.startVisit(w, r)
	defer s.endVisit(v, r, host)
	if !ok {
		s.stats.NotOurs.Add(1)
		s.fail(v, r, host, ErrNotOurs)
		return
	}
	defer s.requests.Add(-s.inFlight(r)) // the count goes up now, down at the end
	s.serveTunnel(v, r, label, host)
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

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "keyhole proxy for *.%s\nclients connect to %s\n", s.cfg.Domain, ConnectPath)
}

// fail answers a visitor with the status for err on a generic page, and
// logs the detail (errpage.go).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, host string, err error) {
	noteFailure(w, err)
	s.errorPage(w, r, host, err)
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
	s.leave()
	s.wg.Wait()
	return nil
}
