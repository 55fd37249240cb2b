package main

import (
	"context"
	"fmt"
	"time"

	"keyhole/internal/loadtool"
)

// memFields are the runtime.MemStats figures reported per tunnel.
var memFields = []string{"HeapInuse", "Stack", "Sys"}

// settle is how long memory figures wait after a change.
const settle = 3 * time.Second

// oneNode measures one proxy alone with o.tunnels idle tunnels.
func oneNode(ctx context.Context, o *options, ps *procs, bin string) error {
	p, err := ps.startProxy(ctx, "proxy-alone", bin)
	if err != nil {
		return err
	}
	defer p.kill()
	time.Sleep(settle)
	rss0, err := rss(p.cmd.Process.Pid)
	if err != nil {
		return err
	}
	g0, err := p.goroutines()
	if err != nil {
		return err
	}
	m0, err := p.memStats(memFields...)
	if err != nil {
		return err
	}
	start := time.Now()
	f, err := loadtool.Open(ctx, o.tunnels, loadtool.Options{Proxies: []string{"ws://" + p.addr}})
	if err != nil {
		return err
	}
	defer f.Close()
	took := time.Since(start)
	time.Sleep(settle)
	rss1, err := rss(p.cmd.Process.Pid)
	if err != nil {
		return err
	}
	g1, err := p.goroutines()
	if err != nil {
		return err
	}
	m1, err := p.memStats(memFields...)
	if err != nil {
		return err
	}
	// What the tunnels hold once the garbage of registering them is
	// collected: two GCs (which also shrink idle stacks), then a pause
	// for the scavenger to return freed pages.
	p.gc()
	p.gc()
	time.Sleep(settle)
	rss2, err := rss(p.cmd.Process.Pid)
	if err != nil {
		return err
	}
	m2, err := p.memStats(memFields...)
	if err != nil {
		return err
	}
	for _, kind := range []string{"heap", "goroutine"} {
		if err := p.profile(o.out, kind); err != nil {
			return err
		}
	}
	lat := requests(ctx, f, []string{p.addr}, o.rate, o.load)
	n := float64(o.tunnels)
	fmt.Printf("\none node, %d idle tunnels\n", o.tunnels)
	fmt.Printf("  registered all in %v (%.0f per second)\n", took.Round(time.Millisecond), n/took.Seconds())
	fmt.Printf("  proxy RSS %d KiB before, %d KiB with the tunnels: %.1f KiB per idle tunnel\n", rss0, rss1, float64(rss1-rss0)/n)
	fmt.Printf("  after two GCs: RSS %d KiB, %.1f KiB per idle tunnel\n", rss2, float64(rss2-rss0)/n)
	fmt.Printf("  proxy goroutines %d before, %d with the tunnels: %.2f per tunnel\n", g0, g1, float64(g1-g0)/n)
	fmt.Printf("  per tunnel, from the Go runtime:")
	for _, k := range memFields {
		fmt.Printf(" %s %.1f KiB", k, float64(m1[k]-m0[k])/1024/n)
	}
	fmt.Printf("; after two GCs:")
	for _, k := range memFields {
		fmt.Printf(" %s %.1f KiB", k, float64(m2[k]-m0[k])/1024/n)
	}
	fmt.Println()
	fmt.Printf("  GET through a random tunnel at %d/s for %v: %v\n", o.rate, o.load, lat)
	return nil
}
