package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
)

// A workload is one kind of traffic, run over one route. Its operations
// are what the result counts: requests, or round trips for a WebSocket
// echo workload.
type workload interface {
	name() string
	requests() bool // its operations are HTTP requests
	run(ctx context.Context, rt route, w window) (result, error)
}

// route is one way to reach the backend: directly, through a tunnel, or
// through a tunnel entered on a proxy node that does not hold the client.
type route struct {
	name   string
	base   string // URL prefix, e.g. http://<label>.localhost:41234
	dial   string // where every visitor connection goes, e.g. 127.0.0.1:41234
	tunnel bool   // through keyhole: counts for backend connection reuse
}

// scenario is a workload and its floor: the lowest acceptable ratio of
// its operations per second over each route to those over the suite's
// first route.
type scenario struct {
	workload
	floor float64
}

// suite is a system under test, the scenarios run on it, and how to
// start it. Every scenario runs over every route of the system; the first
// route is the reference of the ratios.
type suite struct {
	name      string // what -run matches, with the scenario's: one-node/GET 1KiB x64
	about     string // what the routes are, for the report
	start     func(ctx context.Context, s setup) (*env, error)
	scenarios []scenario
}

// suites, in the order they run. A new kind of traffic is a new
// workload; a new way in is a new route of a suite's env.
var suites = []suite{
	{
		name:  "one-node",
		about: "direct = the backend itself; tunnel = through one proxy and one client",
		start: startTunnel,
		scenarios: []scenario{
			{httpGet{path: "/1k", conns: 1}, 0.35},
			{httpGet{path: "/1k", conns: 64}, 0.30},
			{httpGet{path: "/400k", conns: 16}, 0.25},
			{wsEcho{size: 1 << 10, conns: 32}, 0.35},
		},
	},
	{
		name: "two-node",
		about: "two proxy nodes on one Redis, the client connected to node a; " +
			"same = entering on node a, cross = entering on node b, which reaches the client over Redis",
		start: startCluster,
		scenarios: []scenario{
			{httpGet{path: "/1k", conns: 64}, 0.5},
		},
	},
}

// selected are the scenarios of su whose suite/name matches re.
func (su *suite) selected(re *regexp.Regexp) []scenario {
	var out []scenario
	for _, sc := range su.scenarios {
		if re.MatchString(su.name + "/" + sc.name()) {
			out = append(out, sc)
		}
	}
	return out
}

// outcome is a scenario's results, one per route.
type outcome struct {
	scenario
	results []result // in the order of env.routes
}

// runScenarios runs every scenario over every route, the routes of one
// scenario back to back so that they meet the same machine.
func runScenarios(ctx context.Context, o *options, e *env, scs []scenario, progress io.Writer) ([]outcome, error) {
	var outs []outcome
	for _, sc := range scs {
		out := outcome{scenario: sc}
		for _, rt := range e.routes {
			res, err := runOne(ctx, o.timing, e, sc, rt)
			if err != nil {
				return outs, fmt.Errorf("%s %s: %w", sc.name(), rt.name, err)
			}
			fmt.Fprintf(progress, "bench: %-16s %-6s %9.0f/s  p50 %-9s p99 %-9s errors %d\n",
				sc.name(), rt.name, res.perSec, ms(res.p50), ms(res.p99), res.errs)
			out.results = append(out.results, res)
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// runOne runs a scenario over a route and samples its cost.
func runOne(ctx context.Context, t timing, e *env, sc scenario, rt route) (result, error) {
	w := t.window()
	start := e.sample()
	marks := e.sampleAt(ctx, w)
	res, err := sc.run(ctx, rt, w)
	if err != nil {
		return res, err
	}
	select {
	case m := <-marks:
		res.cost = costOf(start, m[0], m[1])
		return res, nil
	case <-ctx.Done():
		return res, ctx.Err()
	}
}

// setup is what starting a system under test needs.
type setup struct {
	ps   *procs
	o    *options
	bins binaries
	be   *backend
	dir  string
}

// env is a running system under test.
type env struct {
	backend *backend
	routes  []route   // routes[0] is the reference
	proxies []node    // whose counters the report gives
	procs   []*proc   // to stop when the suite is done, in this order
	watched []watched // processes whose CPU time the runs report
}

// node is a proxy process and its host:port.
type node struct {
	name string
	addr string
}

// stop stops the env's processes in order and reports what went wrong.
func (e *env) stop(ps *procs, stderr io.Writer) {
	for _, p := range e.procs {
		if err := ps.stop(p); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	}
}

// proxyArgs turns the limits off, so that they do not distort the
// measurement.
var proxyArgs = []string{"--listen", "127.0.0.1:0", "--tunnel-rate", "0", "--client-rate", "0",
	"--register-rate", "0", "--register-global-rate", "0", "--drain-timeout", "2s"}

// startProxy starts a proxy with proxyArgs and extra and returns it with
// its host:port.
func startProxy(ctx context.Context, ps *procs, name, dir, bin string, extra ...string) (*proc, string, error) {
	p, line, err := ps.start(ctx, name, dir, bin, append(proxyArgs[:len(proxyArgs):len(proxyArgs)], extra...)...)
	if err != nil {
		return nil, "", err
	}
	u, err := url.Parse(line)
	if err != nil || u.Port() == "" {
		return nil, "", fmt.Errorf("%s printed %q, want its URL with a port", name, line)
	}
	return p, "127.0.0.1:" + u.Port(), nil
}

// startClient starts a client of the proxy at addr in front of be, and
// returns it with the public URL it printed.
func startClient(ctx context.Context, s setup, name, addr string) (*proc, *url.URL, error) {
	c, line, err := s.ps.start(ctx, name, s.dir, s.bins.client,
		"--proxy", "ws://"+addr, "--target", s.be.url, "--key", filepath.Join(s.dir, name+".key"))
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(line)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("%s printed %q, want its public URL", name, line)
	}
	return c, u, nil
}

// startTunnel starts a proxy and a client in front of be.
func startTunnel(ctx context.Context, s setup) (*env, error) {
	p, addr, err := startProxy(ctx, s.ps, "proxy", s.dir, s.bins.proxy)
	if err != nil {
		return nil, err
	}
	c, u, err := startClient(ctx, s, "client", addr)
	if err != nil {
		return nil, err
	}
	return &env{
		backend: s.be,
		proxies: []node{{"proxy", addr}},
		procs:   []*proc{c, p},
		routes: []route{
			{name: "direct", base: s.be.url, dial: s.be.url[len("http://"):]},
			{name: "tunnel", base: u.String(), dial: addr, tunnel: true},
		},
		watched: []watched{
			{"proxy", p.cmd.Process.Pid},
			{"client", c.cmd.Process.Pid},
			{"bench", os.Getpid()}, // the load generator and the backend
		},
	}, nil
}
