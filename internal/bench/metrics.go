package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// counters are the proxy's unlabelled metrics, by name without the
// keyhole_proxy_ prefix and _total suffix.
type counters map[string]int64

// scrapeMetrics reads the proxy's counters from its apex host.
func scrapeMetrics(ctx context.Context, addr string) (counters, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	c := make(counters)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		name, named := strings.CutPrefix(name, "keyhole_proxy_")
		name = strings.TrimSuffix(name, "_total")
		if v, err := strconv.ParseFloat(value, 64); ok && named && err == nil {
			c[name] = int64(v)
		}
	}
	return c, sc.Err()
}

// minus is c − b, leaving out what did not change.
func (c counters) minus(b counters) counters {
	d := make(counters)
	for k, v := range c {
		if v != b[k] {
			d[k] = v - b[k]
		}
	}
	return d
}
