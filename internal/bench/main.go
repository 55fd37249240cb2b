// Command bench is keyhole's end-to-end benchmark. It builds the real proxy
// and client, puts them in front of a backend on loopback, and measures the
// same traffic through the tunnel and straight to the backend, back to back
// in the same run. The backend and the load generator each run in a
// process of their own, for the direct route and the tunnel alike: the
// benchmark starts its own binary as "bench backend" and, per run, as
// "bench load <spec>", or wrk for the HTTP GETs when it is installed.
//
// One node: 1 KiB GETs at 1 and 64 connections, 400 KiB GETs at 16,
// WebSocket echo round trips, and the latency of server-sent events from
// the backend's flush to their arrival. The same GETs and echoes through
// two byte relays in a row ("bench relay", no floors): the best a tunnel
// of two processes could do on the machine in that run. Two nodes on a
// redis-server it starts: GETs and events entering on the node that does
// not hold the client against entering on the node that does. Then, with the proxies
// run with --max-body 0 (no cap), a 256 MiB download and a 256 MiB upload,
// checked to the byte by SHA-256, through one node and across two, against
// direct. Then how many backend connections the client opens, and the
// proxy's memory per idle tunnel. It prints a table per system and kind of
// traffic and the floors as PASS/FAIL lines. It is a measurement, not a
// test: it exits 0 when a floor fails, and non-zero only when it could not
// measure; a transfer that breaks, or a proxy that refuses --max-body 0,
// is a FAIL line, not a failure to measure.
//
//	go run ./internal/bench [-duration 4s] [-warmup 1s] [-run regexp] [-tunnels 1000] [-wrk wrk] [-redis-server redis-server] [-inspect off]
//
// -run matches suite/scenario, e.g. one-node/GET 1KiB x64, one-node/WS
// echo 1KiB x32, two-node/SSE, one-node-nocap/download 256MiB,
// two-node-nocap/upload; a suite none of whose scenarios match is not
// started, so -run one-node needs no redis-server. -wrk "" uses the
// benchmark's own load generator for the GETs too; wrk counts in whole
// seconds, so it rounds -duration and -warmup up. -inspect off runs the
// clients with their inspector off, to compare with the default (on).
//
// Besides rates and latency, each row gives the CPU time per operation of
// the backend, the proxies, the client, Redis and the load generator, and
// how busy the rest of the machine was: on a shared machine the CPU
// columns are the steadier figures.
//
// To profile, build binaries with a pprof endpoint through a build overlay
// (cmd/* stay untouched) and pass them with -proxy-bin and -client-bin;
// the benchmark passes its environment, minus KEYHOLE_* variables, on to
// them. For example, an overlay adding to cmd/proxy a file whose init
// serves net/http/pprof on an address named by an environment variable:
//
//	go build -overlay overlay.json -o /tmp/prof/ ./cmd/proxy ./cmd/client
//	go run ./internal/bench -run 'x1$' -duration 20s -tunnels 0 -proxy-bin /tmp/prof/proxy -client-bin /tmp/prof/client
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

// options are the benchmark's flags.
type options struct {
	timing    timing
	tunnels   int           // idle tunnels for the memory figure; 0 skips it
	settle    time.Duration // wait before reading the proxy's memory
	only      *regexp.Regexp
	proxyBin  string // prebuilt proxy, e.g. a copy with a pprof endpoint
	clientBin string
	keep      bool
	wrk       string // wrk binary for the GETs; "" or not found: the benchmark's own generator
	inspect   string // the clients' --inspect; "": the client's default

	redisServer string // the redis-server binary for the two-node suites
	transfer    int64  // bytes of each large transfer
}

func parseFlags(args []string) (*options, error) {
	var o options
	var only string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.timing.measure, "duration", 4*time.Second, "measured `time` of each run")
	fs.DurationVar(&o.timing.warmup, "warmup", time.Second, "unmeasured `time` before each run")
	fs.IntVar(&o.timing.runs, "runs", 3, "`runs` of each rate scenario (GETs, WebSocket echo) and each large transfer, its routes back to back each time; the report gives the run with the median ratio (for a transfer, with the first failure and the highest memory of all its runs)")
	fs.IntVar(&o.tunnels, "tunnels", 1000, "idle tunnels `n` for the proxy memory figure (0 skips it)")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait this `long` before reading the proxy's memory")
	fs.StringVar(&only, "run", "", "run only the scenarios whose suite/name matches this `regexp`")
	fs.StringVar(&o.proxyBin, "proxy-bin", "", "use this proxy `binary` instead of building ./cmd/proxy")
	fs.StringVar(&o.clientBin, "client-bin", "", "use this client `binary` instead of building ./cmd/client")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "redis-server `binary` for the two-node suites")
	fs.StringVar(&o.wrk, "wrk", "wrk", "wrk `binary` for the HTTP GETs; empty or not installed: the benchmark's own load generator")
	fs.StringVar(&o.inspect, "inspect", "", "pass --inspect `ADDR` (or off) to the clients; empty: the client's default, its inspector on")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, keys, logs)")
	fs.Int64Var(&o.transfer, "transfer-mib", large>>20, "size in `MiB` of each large download and upload (the nocap suites)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.timing.measure <= 0 || o.timing.warmup < 0 || o.tunnels < 0 || o.transfer <= 0 || o.timing.runs <= 0 {
		return nil, errors.New("-duration, -runs and -transfer-mib must be positive, -warmup and -tunnels not negative")
	}
	o.transfer <<= 20
	re, err := regexp.Compile(only)
	if err != nil {
		return nil, fmt.Errorf("-run: %w", err)
	}
	o.only = re
	return &o, nil
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == backendCmd || os.Args[1] == loadCmd || os.Args[1] == relayCmd) {
		os.Exit(child(os.Args[1], os.Args[2:]))
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o, os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil // before stop, which cancels ctx
	stop()
	if err != nil {
		if interrupted {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// child runs the benchmark's binary as the backend or as a load
// generator, until it is done or SIGTERM, and returns its exit code.
func child(cmd string, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case cmd == backendCmd && len(args) == 0:
		err = serveBackend(ctx, os.Stdout)
	case cmd == loadCmd && len(args) == 1:
		err = runLoad(ctx, args[0], os.Stdout)
	case cmd == relayCmd && len(args) == 1:
		err = serveRelay(ctx, args[0], os.Stdout)
	default:
		err = fmt.Errorf("usage: bench %s: wrong arguments %q", cmd, args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// run builds, starts and measures everything, prints the report to stdout
// and progress to stderr, and stops every process it started.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "keyhole-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "bench: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var ps procs
	defer ps.stopAll(stderr)

	bins, err := build(ctx, dir, o, stderr)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	be, err := startBackend(ctx, &ps, dir, self)
	if err != nil {
		return err
	}
	s := setup{ps: &ps, o: o, bins: bins, be: be, dir: dir, self: self, wrk: findWrk(o.wrk), sums: make(map[int64]string)}
	rep := report{timing: o.timing, limits: proxyDefaults(ctx, bins.proxy), wrk: "none"}
	if s.wrk != "" {
		rep.wrk = wrkVersion(ctx, s.wrk)
	}
	for i := range suites {
		su := &suites[i]
		su.sizeTransfers(o.transfer)
		scs := su.selected(o.only)
		if len(scs) == 0 {
			continue
		}
		sr, err := runSuite(ctx, s, su, scs, stderr)
		if sr != nil {
			rep.suites = append(rep.suites, sr)
		}
		if err != nil {
			// Give what was measured, then fail.
			err = fmt.Errorf("%s: %w", su.name, err)
			rep.errs = append(rep.errs, err.Error())
			rep.write(stdout)
			return err
		}
	}

	if o.tunnels > 0 {
		fmt.Fprintf(stderr, "bench: connecting %d idle tunnels to a fresh proxy\n", o.tunnels)
		rep.rss, err = measureRSS(ctx, &ps, bins, be, dir, o.tunnels, o.settle)
		if err != nil {
			return fmt.Errorf("proxy memory: %w", err)
		}
	}
	rep.write(stdout)
	return nil
}

// runSuite starts a suite's system, runs the scenarios on it and stops
// it. It returns what it measured, if it started; a soft suite that did
// not start is a report of why.
func runSuite(ctx context.Context, s setup, su *suite, scs []scenario, stderr io.Writer) (*suiteReport, error) {
	fmt.Fprintf(stderr, "bench: starting the %s system\n", su.name)
	s.tag, s.proxyArgs = su.name+"-", su.proxyArgs
	e, err := su.start(ctx, s)
	defer e.stop(s.ps, stderr)
	sr := &suiteReport{suite: su, selected: scs}
	if err == nil {
		sr.routes, err = e.pick(su.routes)
	}
	if err != nil {
		if su.soft && ctx.Err() == nil {
			fmt.Fprintf(stderr, "bench: %s did not start: %s\n", su.name, oneLine(err.Error()))
			sr.startErr = err.Error()
			return sr, nil
		}
		return nil, err
	}
	for _, w := range e.watched {
		sr.watched = append(sr.watched, w.name)
	}
	before := make([]counters, len(e.proxies))
	for i, n := range e.proxies {
		before[i], _ = scrapeMetrics(ctx, n.addr)
	}
	r := &runner{e: e, t: s.o.timing, self: s.self, wrk: s.wrk, dir: s.dir, sums: s.sums}
	sr.load[0] = loadAvg()
	sr.outcomes, err = runScenarios(ctx, r, su, sr.routes, scs, stderr)
	sr.load[1] = loadAvg()
	for i, n := range e.proxies {
		after, _ := scrapeMetrics(ctx, n.addr)
		sr.counters = append(sr.counters, nodeCounters{n.name, after.minus(before[i])})
	}
	return sr, err
}
