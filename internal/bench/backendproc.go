package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backendProc is the backend's process as the benchmark sees it.
type backendProc struct {
	*proc
	url      string // e.g. http://127.0.0.1:41234
	statsURL string
	hc       *http.Client // keeps one connection to the stats listener
}

// startBackend starts the benchmark's own binary, self, as the backend.
func startBackend(ctx context.Context, ps *procs, dir, self string) (*backendProc, error) {
	p, line, err := ps.start(ctx, "backend", dir, self, backendCmd)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)
	if len(f) != 2 || !strings.HasPrefix(f[0], "http://") {
		ps.stop(p)
		return nil, fmt.Errorf("backend printed %q, want its two URLs", line)
	}
	return &backendProc{proc: p, url: f[0], statsURL: f[1], hc: &http.Client{Timeout: 5 * time.Second}}, nil
}

// addr is the backend's host:port.
func (b *backendProc) addr() string { return strings.TrimPrefix(b.url, "http://") }

// conns is how many connections the backend accepted, -1 if unknown.
func (b *backendProc) conns() int64 {
	resp, err := b.hc.Get(b.statsURL + connsPath)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(string(body), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// pid is the backend's process id.
func (b *backendProc) pid() int { return b.cmd.Process.Pid }
