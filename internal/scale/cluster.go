package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/internal/loadtool"
	"keyhole/registry/redisreg"
)

const secret = "scale run cluster secret, not for production"

// clusterRun measures o.nodes proxies on one Redis with o.tunnels spread
// over them.
func clusterRun(ctx context.Context, o *options, ps *procs, bin string) error {
	addr, rcmd, err := ps.startRedis(ctx, o.redisBin)
	if err != nil {
		return err
	}
	defer rcmd.Process.Kill()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	var nodes []*proc
	var proxies, addrs []string
	for i := range o.nodes {
		name := fmt.Sprintf("n%d", i+1)
		p, err := ps.startProxy(ctx, "proxy-"+name, bin, "--redis", "redis://"+addr, "--cluster-secret", secret, "--node", name)
		if err != nil {
			return err
		}
		defer p.kill()
		nodes, proxies, addrs = append(nodes, p), append(proxies, "ws://"+p.addr), append(addrs, p.addr)
	}
	mem0, err := usedMemory(ctx, rc)
	if err != nil {
		return err
	}
	start := time.Now()
	f, err := loadtool.Open(ctx, o.tunnels, loadtool.Options{Proxies: proxies, Reconnect: true})
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Printf("\n%d nodes on one Redis, %d tunnels spread over them\n", o.nodes, o.tunnels)
	fmt.Printf("  registered all in %v\n", time.Since(start).Round(time.Millisecond))
	time.Sleep(settle)
	mem1, err := usedMemory(ctx, rc)
	if err != nil {
		return err
	}
	fmt.Printf("  Redis used_memory %d KiB before, %d KiB with the routes: %.0f bytes per tunnel\n", mem0/1024, mem1/1024, float64(mem1-mem0)/float64(o.tunnels))
	for _, p := range nodes {
		kib, _ := rss(p.cmd.Process.Pid)
		g, _ := p.goroutines()
		fmt.Printf("  node %s: RSS %d KiB, %d goroutines\n", p.name, kib, g)
	}

	if err := countCommands(ctx, rc, fmt.Sprintf("idle for %v", o.idle), o.nodes, func() { time.Sleep(o.idle) }); err != nil {
		return err
	}
	var lat *latencies
	if err := countCommands(ctx, rc, fmt.Sprintf("GETs at %d/s for %v entering any node", o.rate, o.load), o.nodes, func() {
		lat = requests(ctx, f, addrs, o.rate, o.load)
	}); err != nil {
		return err
	}
	fmt.Printf("  those GETs (2 in 3 cross nodes): %v\n", lat)
	lc := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer lc.Close()
	reg, err := redisreg.New(lc, redisreg.Options{})
	if err != nil {
		return err
	}
	defer reg.Close()
	fmt.Printf("  registry lookups: %v\n", lookups(ctx, reg, f, 2000))
	return killNode(ctx, reg, f, nodes[len(nodes)-1])
}

// countCommands runs phase and prints the Redis commands it cost.
func countCommands(ctx context.Context, rc *redis.Client, what string, nodes int, phase func()) error {
	before, err := readCommandStats(ctx, rc)
	if err != nil {
		return err
	}
	start := time.Now()
	phase()
	took := time.Since(start)
	after, err := readCommandStats(ctx, rc)
	if err != nil {
		return err
	}
	total, by := after.since(before)
	perSec := float64(total) / took.Seconds()
	fmt.Printf("  Redis, %s: %d commands, %.1f per second, %.1f per node per second (%s)\n", what, total, perSec, perSec/float64(nodes), by)
	return nil
}

// lookups times n registry lookups of random labels.
func lookups(ctx context.Context, reg *redisreg.Registry, f *loadtool.Fleet, n int) *latencies {
	var lat latencies
	links := f.Links()
	for range n {
		start := time.Now()
		nodes, err := reg.Lookup(ctx, links[rand.N(len(links))].Label())
		lat.add(time.Since(start), err == nil && len(nodes) == 1)
	}
	return &lat
}

// killNode kills p with SIGKILL and times how long its routes stay
// visible and how long its tunnels take to register on the other nodes.
func killNode(ctx context.Context, reg *redisreg.Registry, f *loadtool.Fleet, p *proc) error {
	node := strings.TrimPrefix(p.name, "proxy-")
	var victims []*loadtool.Link
	for _, l := range f.Links() {
		if l.Node() == "ws://"+p.addr {
			victims = append(victims, l)
		}
	}
	sample := victims[:min(200, len(victims))]
	p.kill()
	killed := time.Now()
	var routesGone, allBack time.Duration
	for deadline := killed.Add(60 * time.Second); (routesGone == 0 || allBack == 0) && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if routesGone == 0 && !anyOn(ctx, reg, sample, node) {
			routesGone = time.Since(killed)
		}
		if allBack == 0 && !slices.ContainsFunc(victims, func(l *loadtool.Link) bool { n := l.Node(); return n == "" || n == "ws://"+p.addr }) {
			allBack = time.Since(killed)
		}
	}
	fmt.Printf("  node %s killed (SIGKILL) holding %d tunnels:\n", node, len(victims))
	fmt.Printf("    its routes gone from lookups after %v (a sample of %d labels)\n", routesGone.Round(time.Millisecond), len(sample))
	fmt.Printf("    its tunnels all registered on the other nodes after %v\n", allBack.Round(time.Millisecond))
	return nil
}

// anyOn reports whether a lookup of any link in ls still names node.
func anyOn(ctx context.Context, reg *redisreg.Registry, ls []*loadtool.Link, node string) bool {
	for _, l := range ls {
		nodes, err := reg.Lookup(ctx, l.Label())
		if err != nil || slices.Contains(nodes, node) {
			return true
		}
	}
	return false
}
