package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// A workload is one kind of traffic, run over one route. Its operations
// are what the result counts: requests, round trips of a WebSocket echo,
// MiB of a transfer, or events of a stream.
type workload interface {
	name() string
	kind() kind
	run(ctx context.Context, r *runner, rt route) (result, error)
}

// kind is what a workload's operations are, and so which table reports
// it.
type kind int

const (
	kindRequests   kind = iota // HTTP requests in a window: ops/s
	kindRoundTrips             // WebSocket round trips in a window: ops/s
	kindTransfer               // one large body: MiB/s
	kindEvents                 // one event stream: latency per event
)

// rate says whether the kind's operations are counted per second.
func (k kind) rate() bool { return k == kindRequests || k == kindRoundTrips }

// route is one way to reach the backend: directly, through a tunnel, or
// through a tunnel entered on a proxy node that does not hold the client.
type route struct {
	name   string
	base   string // URL prefix, e.g. http://<label>.localhost:41234
	dial   string // where every visitor connection goes, e.g. 127.0.0.1:41234
	tunnel bool   // through keyhole: counts for backend connection reuse and the latency floors
}

// scenario is a workload and its floors. The ratio floor is the lowest
// acceptable ratio of its rate over each route to its rate over the
// suite's first route; the others hold over every tunnel route. A zero
// floor is none.
type scenario struct {
	workload
	floor  float64       // rate over the first route's
	p50Max time.Duration // latency
	p99Max time.Duration
	cpuMax time.Duration // CPU per operation of the proxies and the client together
}

// suite is a system under test, the scenarios run on it, and how to
// start it. Every scenario runs over every route of the system; the first
// route is the reference of the ratios.
type suite struct {
	name      string   // what -run matches, with the scenario's: one-node/GET 1KiB x64
	about     string   // what the routes are, for the report
	proxyArgs []string // added to every proxy's flags
	routes    []string // the env's routes to run, by name, in order; nil: all of them
	// soft: the scenarios' failures, starting the system included, are
	// results (FAIL lines), not a benchmark that could not measure.
	soft      bool
	start     func(ctx context.Context, s setup) (*env, error)
	scenarios []scenario
}

const (
	small = 1 << 10   // the small GET's body and the WebSocket message
	large = 256 << 20 // the transfers' bodies
	ms20  = 20 * time.Millisecond
)

// suites, in the order they run. A new kind of traffic is a new
// workload; a new way in is a new route of a suite's env.
var suites = []suite{
	{
		name:  "one-node",
		about: "direct = the backend itself; tunnel = through one proxy and one client",
		start: startTunnel,
		scenarios: []scenario{
			{workload: httpGet{path: "/1k", conns: 1}, floor: 0.20, p50Max: 350 * time.Microsecond},
			{workload: httpGet{path: "/1k", conns: 64}, floor: 0.25, cpuMax: 70 * time.Microsecond},
			{workload: httpGet{path: "/400k", conns: 16}, floor: 0.22},
			{workload: wsEcho{size: small, conns: 32}, floor: 0.30},
			{workload: events{n: 200, gap: 10 * time.Millisecond}, p99Max: ms20},
		},
	},
	{
		// No floors: what the one-node ratios can be at best on this
		// machine today, as the direct route's speed moves from run to run.
		name: "relay",
		about: "direct = the backend itself; relay = through two byte relays in a row, each a process of its own " +
			"that parses nothing and gives each connection one of its own: the floor under any two-process tunnel",
		start: startRelay,
		scenarios: []scenario{
			{workload: httpGet{path: "/1k", conns: 1}},
			{workload: httpGet{path: "/1k", conns: 64}},
			{workload: httpGet{path: "/400k", conns: 16}},
			{workload: wsEcho{size: small, conns: 32}},
		},
	},
	{
		name: "two-node",
		about: "two proxy nodes on one Redis, the client connected to node a; " +
			"same = entering on node a, cross = entering on node b, which reaches the client over Redis",
		start: startCluster,
		scenarios: []scenario{
			{workload: httpGet{path: "/1k", conns: 64}, floor: 0.5},
			{workload: events{n: 200, gap: 10 * time.Millisecond}, p99Max: ms20},
		},
	},
	{
		name:      "one-node-nocap",
		about:     "as one-node, the proxy run with --max-body 0 (no cap)",
		proxyArgs: []string{"--max-body", "0"},
		soft:      true,
		start:     startTunnel,
		scenarios: []scenario{
			{workload: transfer{size: large}, floor: 0.25},
			{workload: transfer{size: large, beside: true}},
			{workload: transfer{up: true, size: large}, floor: 0.25},
		},
	},
	{
		name:      "two-node-nocap",
		about:     "as two-node, both nodes run with --max-body 0 (no cap); direct = the backend itself",
		proxyArgs: []string{"--max-body", "0"},
		routes:    []string{"direct", "cross"},
		soft:      true,
		start:     startCluster,
		scenarios: []scenario{
			{workload: transfer{size: large}, floor: 0.25},
			{workload: transfer{size: large, beside: true}},
			{workload: transfer{up: true, size: large}, floor: 0.25},
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
	results []result  // in the order of the suite's routes
	ratios  []float64 // of a rate scenario run more than once: each run's ratio, ascending
}

// runScenarios runs every scenario over every route, the routes of one
// scenario back to back so that they meet the same machine. A rate
// scenario or a transfer runs r.t.runs times so, and the run whose ratio
// is the median stands for it: on a machine whose speed drifts, one run
// can land in a slow minute. A transfer's failures and memory are the
// worst of its runs, though: a break or a peak in any run counts. In a
// soft suite a run that fails is a result.
func runScenarios(ctx context.Context, r *runner, su *suite, routes []route, scs []scenario, progress io.Writer) ([]outcome, error) {
	var outs []outcome
	for _, sc := range scs {
		runs := 1
		if (sc.kind().rate() || sc.kind() == kindTransfer) && len(routes) > 1 {
			runs = r.t.runs
		}
		var tries []outcome
		for range runs {
			out := outcome{scenario: sc}
			for _, rt := range routes {
				res, err := sc.run(ctx, r, rt)
				if err != nil && (!su.soft || ctx.Err() != nil) {
					return outs, fmt.Errorf("%s %s: %w", sc.name(), rt.name, err)
				}
				if err != nil {
					res = result{fail: err.Error()}
				}
				progressLine(progress, sc, rt, res)
				out.results = append(out.results, res)
			}
			tries = append(tries, out)
		}
		out := median(tries)
		if sc.kind() == kindTransfer {
			worstOf(&out, tries)
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// worstOf gives each route's result in out the first failure and the
// highest memory figures any of the runs had on that route.
func worstOf(out *outcome, runs []outcome) {
	for i := range out.results {
		res := &out.results[i]
		for _, o := range runs {
			other := o.results[i]
			if res.fail == "" && other.fail != "" {
				res.fail = other.fail
			}
			res.omem = max(res.omem, other.omem)
			for j := range min(len(res.growth), len(other.growth)) {
				res.growth[j] = max(res.growth[j], other.growth[j])
			}
		}
	}
}

// median returns the run whose ratio (its last route over its first) is
// the median, the higher of the two middle ones for an even count, with
// every run's ratio; a run that failed counts as the lowest.
func median(runs []outcome) outcome {
	if len(runs) == 1 {
		return runs[0]
	}
	ratio := func(o outcome) float64 {
		ref, res := o.results[0], o.results[len(o.results)-1]
		if ref.fail != "" || res.fail != "" || ref.perSec <= 0 {
			return 0
		}
		return res.perSec / ref.perSec
	}
	slices.SortStableFunc(runs, func(a, b outcome) int { return cmp.Compare(ratio(a), ratio(b)) })
	out := runs[len(runs)/2]
	for _, o := range runs {
		out.ratios = append(out.ratios, ratio(o))
	}
	return out
}

func progressLine(w io.Writer, sc scenario, rt route, res result) {
	fmt.Fprintf(w, "bench: %-18s %-6s ", sc.name(), rt.name)
	switch {
	case res.fail != "":
		fmt.Fprintf(w, "FAILED: %s\n", oneLine(res.fail))
	case sc.kind() == kindTransfer:
		fmt.Fprintf(w, "%9.0f MiB/s in %v\n", res.perSec, res.elapsed.Round(time.Millisecond))
	case sc.kind() == kindEvents:
		fmt.Fprintf(w, "%d events, p50 %s p99 %s\n", res.ops, ms(res.p50), ms(res.p99))
	default:
		fmt.Fprintf(w, "%9.0f/s  p50 %-9s p99 %-9s errors %d\n", res.perSec, ms(res.p50), ms(res.p99), res.errs)
	}
}

// setup is what starting a system under test needs.
type setup struct {
	ps        *procs
	o         *options
	bins      binaries
	be        *backendProc
	dir       string
	self      string           // the benchmark's binary, for the load generators
	wrk       string           // wrk binary; "" uses the benchmark's own generator
	sums      map[int64]string // SHA-256 of the pattern by length, shared by the suites
	tag       string           // prefix of the process names, so that suites keep their own logs and keys
	proxyArgs []string         // the suite's
}

// env is a running system under test.
type env struct {
	backend *backendProc
	routes  []route   // routes[0] is the reference
	proxies []node    // whose counters the report gives
	procs   []*proc   // to stop when the suite is done, in this order
	watched []watched // processes whose CPU time the runs report
	redis   string    // host:port of the suite's redis-server, or ""
}

// node is a proxy process and its host:port.
type node struct {
	name string
	addr string
}

// directRoute is the backend itself.
func directRoute(be *backendProc) route {
	return route{name: "direct", base: be.url, dial: be.addr()}
}

// pick is the env's routes named in names, in that order; all of them
// if names is nil.
func (e *env) pick(names []string) ([]route, error) {
	if names == nil {
		return e.routes, nil
	}
	all := append([]route{directRoute(e.backend)}, e.routes...)
	var out []route
	for _, n := range names {
		i := indexRoute(all, n)
		if i < 0 {
			return nil, fmt.Errorf("no route %q", n)
		}
		out = append(out, all[i])
	}
	return out, nil
}

func indexRoute(rs []route, name string) int {
	for i, r := range rs {
		if r.name == name {
			return i
		}
	}
	return -1
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

// startClient starts a client of the proxy at addr in front of the
// backend, and returns it with the public URL it printed.
func startClient(ctx context.Context, s setup, name, addr string) (*proc, *url.URL, error) {
	args := []string{"--proxy", "ws://" + addr, "--target", s.be.url, "--key", filepath.Join(s.dir, name+".key")}
	if s.o.inspect != "" {
		args = append(args, "--inspect", s.o.inspect)
	}
	c, line, err := s.ps.start(ctx, name, s.dir, s.bins.client, args...)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(line)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("%s printed %q, want its public URL", name, line)
	}
	return c, u, nil
}

// startTunnel starts a proxy and a client in front of the backend.
func startTunnel(ctx context.Context, s setup) (*env, error) {
	e := &env{backend: s.be}
	p, addr, err := startProxy(ctx, s.ps, s.tag+"proxy", s.dir, s.bins.proxy, s.proxyArgs...)
	if err != nil {
		return e, err
	}
	e.procs = []*proc{p}
	c, u, err := startClient(ctx, s, s.tag+"client", addr)
	if err != nil {
		return e, err
	}
	e.procs = []*proc{c, p}
	e.proxies = []node{{"proxy", addr}}
	e.routes = []route{directRoute(s.be), {name: "tunnel", base: u.String(), dial: addr, tunnel: true}}
	e.watched = []watched{
		{"backend", s.be.pid()},
		{"proxy", p.cmd.Process.Pid},
		{"client", c.cmd.Process.Pid},
	}
	return e, nil
}
