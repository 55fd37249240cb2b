// Command scale is keyhole's scale run: many idle tunnels, opened by
// package loadtool from this one process, on real proxy binaries and a
// real redis-server, bounded in time (a few minutes with the defaults).
//
//	go run ./internal/scale [-tunnels 10000] [-idle 60s] [-out DIR]
//
// First one node alone: the proxy's RSS and goroutines per idle tunnel,
// the time to register them all, and the latency of requests through
// random tunnels meanwhile. Then three nodes on one Redis with the
// tunnels spread over them: Redis commands per second idle (INFO
// commandstats before and after -idle) and under a fixed request rate,
// the registry's lookup latency, and, after one node is killed with
// SIGKILL, how long its routes stay visible and how long its tunnels take
// to register again on the others. The proxy binary is built with a pprof
// endpoint added through a build overlay (cmd/proxy itself is untouched),
// and heap and goroutine profiles of the loaded node are left in -out.
// It is a measurement: it prints figures, and exits non-zero only when it
// could not measure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	tunnels  int
	nodes    int
	idle     time.Duration
	rate     int           // requests per second in the request phases
	load     time.Duration // length of each request phase
	out      string
	redisBin string
}

func main() {
	var o options
	flag.IntVar(&o.tunnels, "tunnels", 10000, "idle tunnels to open")
	flag.IntVar(&o.nodes, "nodes", 3, "proxy nodes in the cluster phase")
	flag.DurationVar(&o.idle, "idle", time.Minute, "how long the cluster idles while Redis commands are counted")
	flag.IntVar(&o.rate, "rate", 200, "requests per second in the request phases")
	flag.DurationVar(&o.load, "load", 10*time.Second, "length of each request phase")
	flag.StringVar(&o.out, "out", "", "directory for logs and profiles (default: a temporary one)")
	flag.StringVar(&o.redisBin, "redis-server", "redis-server", "the redis-server binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute) // a hard bound on the whole run
	defer cancel()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	if o.out == "" {
		dir, err := os.MkdirTemp("", "keyhole-scale-")
		if err != nil {
			return err
		}
		o.out = dir
	}
	fmt.Printf("scale: %d tunnels; logs and profiles in %s\n", o.tunnels, o.out)
	bin, err := buildProxy(ctx, o.out)
	if err != nil {
		return err
	}
	ps := &procs{dir: o.out}
	defer ps.stopAll()
	if err := oneNode(ctx, o, ps, bin); err != nil {
		return fmt.Errorf("one node: %w", err)
	}
	if err := clusterRun(ctx, o, ps, bin); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}
