// Command proxy is keyhole's proxy: it accepts client links and routes
// visitors' requests for <label>.<domain> to them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"keyhole/bus/redisbus"
	"keyhole/internal/cli"
	"keyhole/internal/h1"
	"keyhole/internal/proxy"
	"keyhole/internal/sock"
	"keyhole/limiter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return // --help or --version, printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyhole proxy:", err)
		os.Exit(2)
	}
}

// options are the proxy's flags.
type options struct {
	listen         string
	domain         string
	redis          string
	clusterSecret  string
	node           string
	requestTimeout time.Duration
	maxBody        int64
	clientRate     float64
	tunnelRate     float64
	trustedProxies string
	publicScheme   string
	publicPort     string
	drainTimeout   time.Duration
	allowKeys      string
	metricsListen  string
	adminToken     string
	proxyProtocol  bool
	hostOnly       bool
	redisPrefix    string
	registerRate   float64
	registerBurst  int
	globalRate     float64
	globalBurst    int
	pending        int
	log            cli.LogOptions
	tls            tlsOptions
}

func parse(args []string, stdout io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stdout) // --help and --version; errors are returned
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve visitors and clients on")
	fs.StringVar(&o.domain, "domain", "localhost", "tunnels are served as <label>.`domain`; the domain itself serves client links")
	fs.StringVar(&o.redis, "redis", "", "redis:// or rediss:// `URL` shared by all proxy nodes; empty runs a single node with no Redis")
	fs.StringVar(&o.redisPrefix, "redis-prefix", redisbus.DefaultPrefix, "`prefix` of every Redis key and channel the nodes use; clusters that share one Redis need different ones")
	fs.StringVar(&o.clusterSecret, "cluster-secret", "", "`secret` every node on the same Redis shares, authenticating their messages (required with --redis)")
	fs.StringVar(&o.node, "node", "", "this node's `name` in the cluster (default: host name and a random suffix)")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 30*time.Second, "answer 504 when a tunnel has not answered within this `duration`")
	fs.Int64Var(&o.maxBody, "max-body", limiter.DefaultMaxBody, "largest request or response body and WebSocket message in `bytes` (413 / 502 / 1009 beyond); 0 for no cap")
	fs.Float64Var(&o.clientRate, "client-rate", 100000, "`messages` per second one client link may send (0 = unlimited)")
	fs.Float64Var(&o.tunnelRate, "tunnel-rate", 25000, "visitor `requests` per second per hostname before 429 (0 = unlimited)")
	fs.Float64Var(&o.registerRate, "register-rate", proxy.DefaultRegisterRate, "client `registrations` per second one source address may start before 429 (0 = unlimited)")
	fs.IntVar(&o.registerBurst, "register-burst", proxy.DefaultRegisterBurst, "registrations one source address may start at once, `n`, before --register-rate applies")
	fs.Float64Var(&o.globalRate, "register-global-rate", proxy.DefaultRegisterGlobalRate, "client `registrations` per second this node accepts from all addresses together before 429 (0 = unlimited)")
	fs.IntVar(&o.globalBurst, "register-global-burst", proxy.DefaultRegisterGlobalBurst, "registrations this node accepts at once, `n`, before --register-global-rate applies")
	fs.IntVar(&o.pending, "register-pending", proxy.DefaultMaxPending, "links that may wait at once, `n`, between the challenge and the client's answer; past it the longest waiting is dropped")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated `CIDRs` of front proxies whose X-Forwarded-* headers are kept and extended")
	fs.BoolVar(&o.hostOnly, "host-only-cookies", false, "remove from services' Set-Cookie headers any Domain but the tunnel's own hostname, so a cookie set by header stays with its tunnel; script on a tunnel's page can still set parent-domain cookies its siblings receive: isolating tenants needs the domain on the Public Suffix List or a registrable domain of its own")
	fs.BoolVar(&o.proxyProtocol, "proxy-protocol", false, "connections from --trusted-proxies must open with a PROXY protocol header (v1 or v2), whose source address is the visitor's; no other peer may send one")
	fs.StringVar(&o.publicScheme, "public-scheme", "", "`scheme` visitors use, for printed URLs and X-Forwarded-Proto: https behind a TLS front (default: https with --tls-cert or --acme, else http)")
	fs.StringVar(&o.publicPort, "public-port", "", "`port` visitors use, for printed URLs (default: the --listen port; 443 or 80 are left out)")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "also serve /healthz and /metrics (alias /_keyhole/metrics) on this `address`, and metrics no longer on the public apex host (default: both on the apex host only)")
	fs.StringVar(&o.adminToken, "admin-token", "", "serve the admin API (list tunnels, disconnect, block keys) on --metrics-listen to calls with \"Authorization: Bearer `token`\" (default: no admin API)")
	fs.StringVar(&o.allowKeys, "allow-keys", "", "`file` of the keys that may register, one label, hostname or URL per line, reread on SIGHUP and when its content changes (default: any key)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, wait this `long` for in-flight requests while clients move to other nodes")
	cli.AddLogFlags(fs, &o.log)
	tlsFlags(fs, &o.tls)
	cli.SetUsage(fs, "usage: proxy [flags]")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if err := limiter.CheckRate(o.clientRate); err != nil {
		return nil, fmt.Errorf("--client-rate: %w", err)
	}
	if err := limiter.CheckRate(o.tunnelRate); err != nil {
		return nil, fmt.Errorf("--tunnel-rate: %w", err)
	}
	for name, r := range map[string]float64{"--register-rate": o.registerRate, "--register-global-rate": o.globalRate} {
		if err := limiter.CheckRate(r); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	for name, b := range map[string]int{"--register-burst": o.registerBurst, "--register-global-burst": o.globalBurst} {
		if err := limiter.CheckBurst(b); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if o.pending <= 0 {
		return nil, fmt.Errorf("--register-pending must be positive")
	}
	if o.maxBody < 0 {
		return nil, fmt.Errorf("--max-body %d: want a number of bytes, or 0 for no cap", o.maxBody)
	}
	if err := checkDomain(o.domain); err != nil {
		return nil, err
	}
	if err := o.tls.check(o.domain); err != nil {
		return nil, err
	}
	if o.publicScheme == "" {
		o.publicScheme = "http"
		if o.tls.on() {
			o.publicScheme = "https"
		}
	}
	if o.adminToken != "" && o.metricsListen == "" {
		return nil, fmt.Errorf("--admin-token needs --metrics-listen: the admin API is served only there")
	}
	if o.publicScheme != "http" && o.publicScheme != "https" {
		return nil, fmt.Errorf("--public-scheme must be http or https")
	}
	return &o, nil
}

func parseCIDRs(s string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("--trusted-proxies: %w", err)
			}
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %w", err)
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// Main runs the proxy until ctx is done, then drains and shuts down. The
// first line on stdout is the proxy's URL.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stdout)
	if err != nil {
		return err
	}
	// Buffered: the access log is a line per request, and a system call
	// each would cost more than the request.
	logw := cli.NewLogWriter(stderr, 100*time.Millisecond)
	defer logw.Close()
	log, err := cli.NewLogger(logw, o.log)
	if err != nil {
		return err
	}
	trusted, err := parseCIDRs(o.trustedProxies)
	if err != nil {
		return err
	}
	if o.proxyProtocol && len(trusted) == 0 {
		return errors.New("--proxy-protocol needs --trusted-proxies: the load balancers whose PROXY headers to believe")
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	ln = sock.Listener(ln)
	defer ln.Close()
	if o.proxyProtocol {
		ln = proxyProtocolListener(ln, trusted)
	}
	port := o.publicPort
	if port == "" {
		_, port, _ = net.SplitHostPort(ln.Addr().String())
	}
	cfg := proxy.Config{
		Domain:              o.domain,
		PublicScheme:        o.publicScheme,
		PublicPort:          port,
		RequestTimeout:      o.requestTimeout,
		MaxBody:             maxBody(o.maxBody),
		ClientRate:          o.clientRate,
		TunnelRate:          o.tunnelRate,
		TrustedProxies:      trusted,
		RegisterRate:        o.registerRate,
		RegisterBurst:       o.registerBurst,
		RegisterGlobalRate:  o.globalRate,
		RegisterGlobalBurst: o.globalBurst,
		MaxPending:          o.pending,
		Node:                o.node,
		PrivateMetrics:      o.metricsListen != "",
		HostOnlyCookies:     o.hostOnly,
		AdminToken:          o.adminToken,
		Logger:              log,
	}
	var allow *allowList
	if o.allowKeys != "" {
		if allow, err = newAllowList(o.allowKeys); err != nil {
			return err
		}
		cfg.Allow = allow.allow
	}
	closeCluster, err := cluster(o, &cfg, log)
	if err != nil {
		return err
	}
	defer closeCluster()
	srv, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	tlsSet, err := setupTLS(o, srv, log)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		WriteTimeout:      o.requestTimeout + 30*time.Second,
		MaxHeaderBytes:    proxy.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	var front shutdowner = hs
	if tlsSet != nil {
		defer tlsSet.close()
		hs.TLSConfig = tlsSet.config
		go func() { errc <- hs.ServeTLS(ln, "", "") }() // HTTP/2 and HTTP/1.1 by ALPN
	} else {
		fs := h1.NewServer(hs, ln) // net/http takes what its fast path does not
		front = fs
		go func() { errc <- fs.Serve() }()
	}
	if o.tls.httpListen != "" {
		stop, err := serveHTTP(o, tlsSet, srv, port, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if allow != nil {
		stop := watchAllowList(allow, srv, log, allowPoll)
		defer stop()
	}
	if o.metricsListen != "" {
		stop, err := serveOps(o.metricsListen, srv, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	apex := srv.ApexURL()
	fmt.Fprintln(stdout, apex)
	log.Info("proxy listening", "addr", ln.Addr().String(), "domain", o.domain, "node", srv.Node(), "url", apex)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown(front, srv, o, log)
	srv.Close()
	log.Info("stopped")
	return nil
}

// shutdown drains the node, keeping its listener open meanwhile, so
// health checks and new links see 503 and requests already under way
// finish, then stops taking visitors. With --redis it waits for its
// clients to move to other nodes; a single node has nowhere to send them
// and waits for its in-flight requests instead. Both wait at most
// --drain-timeout.
func shutdown(hs shutdowner, srv *proxy.Server, o *options, log *slog.Logger) {
	log.Info("draining", "timeout", o.drainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	if o.redis != "" {
		srv.Drain(ctx)
	} else {
		done, stop := context.WithCancel(ctx)
		stop()
		srv.Drain(done) // GoAway only: the clients cannot move
		srv.WaitIdle(ctx)
	}
	if err := hs.Shutdown(ctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
}

// shutdowner is the server that takes visitors: an http.Server, or for
// plain HTTP the fast path in front of one.
type shutdowner interface{ Shutdown(context.Context) error }

// serveOps serves health and metrics on addr until the returned function
// is called.
func serveOps(addr string, srv *proxy.Server, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	return cli.Serve(ln, srv.OpsHandler(), log), nil
}

// maxBody turns --max-body, where 0 means no cap, into Config.MaxBody,
// where 0 means the default.
func maxBody(n int64) int64 {
	if n == 0 {
		return proxy.NoCap
	}
	return n
}
