package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"keyhole/internal/client"
)

const (
	readyTimeout = time.Minute      // for every idle tunnel to register
	closeTimeout = 20 * time.Second // for them to go away after cancel
)

// rssResult is the proxy's resident memory, in KiB, before and with n idle
// tunnels, and after they disconnected.
type rssResult struct {
	tunnels              int
	before, loaded, gone int64
	active               int64 // links the proxy counted with all tunnels up
	left                 int64 // links it still counted after they went away
	stuck                int64 // clients whose Run had not returned in time
}

func (r *rssResult) perTunnel() float64 {
	return float64(r.loaded-r.before) / float64(r.tunnels)
}

// measureRSS starts a fresh proxy, so that no earlier load is in its
// memory, and reads its RSS before and after n in-process clients, each
// with its own key, have registered and idled for settle.
func measureRSS(ctx context.Context, ps *procs, bins binaries, be *backendProc, dir string, n int, settle time.Duration) (*rssResult, error) {
	p, addr, err := startProxy(ctx, ps, "proxy-rss", dir, bins.proxy)
	if err != nil {
		return nil, err
	}
	defer ps.stop(p)
	pid := p.cmd.Process.Pid
	r := &rssResult{tunnels: n}
	pause(ctx, settle)
	if r.before, err = readRSS(pid); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	var idle idleTunnels
	defer idle.stop(cancel)
	if err := idle.start(cctx, "ws://"+addr, be.url, n); err != nil {
		return nil, err
	}
	if err := idle.waitReady(ctx, n); err != nil {
		return nil, err
	}
	pause(ctx, settle)
	if r.loaded, err = readRSS(pid); err != nil {
		return nil, err
	}
	r.active = linksActive(ctx, addr)
	r.stuck = idle.stop(cancel)
	r.left = waitLinksGone(ctx, addr)
	r.gone, err = readRSS(pid)
	return r, err
}

// idleTunnels are in-process clients that serve nothing.
type idleTunnels struct {
	wg      sync.WaitGroup // one per client
	ready   atomic.Int64   // clients that registered at least once
	running atomic.Int64   // clients whose Run has not returned
}

// start starts n clients in front of target, each with a new key.
func (t *idleTunnels) start(ctx context.Context, proxy, target string, n int) error {
	tr := client.NewTransport() // unused by idle tunnels; one is enough
	for range n {
		_, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			return err
		}
		var once sync.Once
		c, err := client.New(client.Config{
			Proxy: proxy, Target: target, Key: key, Transport: tr,
			Ready: func(string) { once.Do(func() { t.ready.Add(1) }) },
		})
		if err != nil {
			return err
		}
		t.running.Add(1)
		t.wg.Go(func() {
			defer t.running.Add(-1)
			c.Run(ctx)
		})
	}
	return nil
}

// waitReady waits until n clients registered.
func (t *idleTunnels) waitReady(ctx context.Context, n int) error {
	deadline := time.Now().Add(readyTimeout)
	for t.ready.Load() < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d tunnels registered within %v", t.ready.Load(), n, readyTimeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pause(ctx, 20*time.Millisecond)
	}
	return nil
}

// stop cancels the clients and waits up to closeTimeout for them; it
// returns how many were still running then.
func (t *idleTunnels) stop(cancel context.CancelFunc) int64 {
	cancel()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
	return t.running.Load()
}

// linksActive is the proxy's count of registered links, -1 if unknown.
func linksActive(ctx context.Context, addr string) int64 {
	c, err := scrapeMetrics(ctx, addr)
	if v, ok := c["links_active"]; err == nil && ok {
		return v
	}
	return -1
}

// waitLinksGone waits up to closeTimeout for the proxy to count no links,
// and returns what it counts then.
func waitLinksGone(ctx context.Context, addr string) int64 {
	deadline := time.Now().Add(closeTimeout)
	for {
		n := linksActive(ctx, addr)
		if n <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		pause(ctx, 50*time.Millisecond)
	}
}

// readRSS is a process's resident set size in KiB, from /proc.
func readRSS(pid int) (int64, error) { return readStatus(pid, "VmRSS:") }

// readStatus is a field of /proc/PID/status counted in KiB, e.g. VmRSS:
// or VmHWM:.
func readStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", field, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("read %s: not in /proc/%d/status", field, pid)
}
