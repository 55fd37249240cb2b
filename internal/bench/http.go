package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// httpGet is a workload of GETs for a fixed body, from conns workers, each
// on its own keep-alive connection: wrk when it is installed, else the
// benchmark's own load generator.
type httpGet struct {
	path  string // one of the backend's bodies
	conns int
}

func (g httpGet) name() string {
	return fmt.Sprintf("GET %s x%d", sizeName(len(bodies[g.path])), g.conns)
}

func (g httpGet) kind() kind { return kindRequests }

func sizeName(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%1024 == 0:
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

func (g httpGet) run(ctx context.Context, r *runner, rt route) (result, error) {
	if r.wrk != "" {
		return r.wrkLoop(ctx, rt, g)
	}
	return r.loop(ctx, loadSpec{Kind: "get", URL: rt.base + g.path, Dial: rt.dial,
		Conns: g.conns, Size: int64(len(bodies[g.path]))})
}

// getLoop is the load generator's side of httpGet.
func getLoop(ctx context.Context, s loadSpec, w window) (result, error) {
	var dials atomic.Int64
	tr := visitorTransport(s.Dial, s.Conns, &dials)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: opTimeout}
	res, err := closedLoop(ctx, s.Conns, w, func(ctx context.Context, _ int) error {
		return fetch(ctx, hc, s.URL, s.Size)
	})
	res.dials = dials.Load()
	return res, err
}

// visitorTransport is a keep-alive transport for n concurrent requests
// that dials addr whatever the URL's host, so <label>.localhost works
// without help from the resolver.
func visitorTransport(addr string, n int, dials *atomic.Int64) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, "tcp", addr)
		},
		MaxIdleConns:        2 * n, // room for a connection dialled in a race
		MaxIdleConnsPerHost: 2 * n,
		MaxConnsPerHost:     n,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
}

// fetch GETs url and checks the status and the body's length.
func fetch(ctx context.Context, hc *http.Client, url string, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	switch {
	case err != nil:
		return fmt.Errorf("read body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", resp.StatusCode)
	case n != size:
		return fmt.Errorf("body of %d bytes, want %d", n, size)
	}
	return nil
}
