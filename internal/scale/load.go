package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"keyhole/internal/loadtool"
)

// latencies are the durations of requests, and how many failed.
type latencies struct {
	mu     sync.Mutex // protects d and failed
	d      []time.Duration
	failed int
}

func (l *latencies) add(d time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		l.failed++
		return
	}
	l.d = append(l.d, d)
}

func (l *latencies) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return fmt.Sprintf("no request succeeded (%d failed)", l.failed)
	}
	s := slices.Sorted(slices.Values(l.d))
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("%d ok, %d failed; p50 %v, p99 %v, max %v", len(s), l.failed,
		q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// requests sends GETs at rate per second for d, each through a random
// link of f entering at a random one of addrs, and records their latency.
func requests(ctx context.Context, f *loadtool.Fleet, addrs []string, rate int, d time.Duration) *latencies {
	var lat latencies
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer hc.CloseIdleConnections()
	links := f.Links()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.After(d)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return &lat
		case <-end:
			return &lat
		case <-tick.C:
		}
		l := links[rand.N(len(links))]
		addr := addrs[rand.N(len(addrs))]
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			if err != nil {
				lat.add(0, false)
				return
			}
			req.Host = l.Label() + ".localhost"
			start := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				lat.add(0, false)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat.add(time.Since(start), resp.StatusCode == http.StatusOK)
		})
	}
}
