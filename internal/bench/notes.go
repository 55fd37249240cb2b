package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// writeNotes says what else the runs showed: reuse overall, errors,
// connections the load generator had to open again, limits the defaults
// would have applied, the proxies' counters.
func (r *report) writeNotes(w io.Writer) {
	warm, conns, total := r.reuse()
	fmt.Fprintf(w, "backend connection reuse: %d new backend connections for %d tunnel requests in the measured parts = %.2f per 1,000 (and %d during the warm-ups)\n",
		conns, total, perThousand(conns, total), warm)
	for _, sr := range r.suites {
		if sr.startErr == "" {
			fmt.Fprintf(w, "load average (1, 5, 15 min) before the %s runs %s, after %s, on %d CPUs\n", sr.name, sr.load[0], sr.load[1], runtime.NumCPU())
		}
	}
	for _, sr := range r.suites {
		for _, o := range sr.outcomes {
			for i, res := range o.results {
				r.noteRun(w, sr, o, i, res)
			}
		}
		for _, nc := range sr.counters {
			if len(nc.counters) == 0 {
				continue
			}
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(nc.counters)) {
				parts = append(parts, fmt.Sprintf("%s %+d", k, nc.counters[k]))
			}
			fmt.Fprintf(w, "%s counters during the %s runs: %s\n", nc.name, sr.name, strings.Join(parts, ", "))
		}
	}
}

// noteRun notes one run's errors, redials and rate over the default limit.
func (r *report) noteRun(w io.Writer, sr *suiteReport, o outcome, i int, res result) {
	at := sr.name + "/" + o.name() + " " + sr.routes[i].name
	if res.errs > 0 {
		fmt.Fprintf(w, "ERRORS %s: %d of %d operations failed; first: %s\n", at, res.errs, res.total, res.firstErr)
	}
	switch g := o.workload.(type) {
	case httpGet:
		// A few extra dials are the load generator's transport racing
		// its own connection's return to the pool; many mean that the
		// other side closes connections.
		if res.dials > int64(2*g.conns) {
			fmt.Fprintf(w, "note %s: the load generator opened %d connections for %d workers\n", at, res.dials, g.conns)
		}
	case wsEcho:
		if res.dials > int64(g.conns) {
			fmt.Fprintf(w, "note %s: the load generator dialled %d sockets for %d workers\n", at, res.dials, g.conns)
		}
	}
	if rate, err := strconv.ParseFloat(r.limits.tunnelRate, 64); err == nil && rate > 0 && sr.routes[i].tunnel && o.kind() == kindRequests && res.perSec > rate {
		fmt.Fprintf(w, "note %s: %.0f requests/s is over the default --tunnel-rate %s\n", at, res.perSec, r.limits.tunnelRate)
	}
}

func (r *report) writeRSS(w io.Writer) {
	s := r.rss
	fmt.Fprintf(w, "proxy RSS (a fresh proxy): %d KiB idle, %d KiB with %d idle tunnels = %.1f KiB per tunnel; %d KiB after they disconnected\n",
		s.before, s.loaded, s.tunnels, s.perTunnel(), s.gone)
	if s.active != int64(s.tunnels) {
		fmt.Fprintf(w, "note: the proxy counted %d active links with %d tunnels up\n", s.active, s.tunnels)
	}
	if s.left != 0 {
		fmt.Fprintf(w, "LEAK? the proxy still counted %d active links %v after every tunnel was cancelled\n", s.left, closeTimeout)
	}
	if s.stuck != 0 {
		fmt.Fprintf(w, "STUCK: %d clients' Run had not returned %v after cancel\n", s.stuck, closeTimeout)
	}
}

// reuse is the new backend connections during the warm-ups and in the
// measured parts of all tunnel runs of request workloads, and the
// requests of the measured parts.
func (r *report) reuse() (warm, conns int64, total int) {
	for _, sr := range r.suites {
		for _, o := range sr.outcomes {
			if o.kind() != kindRequests {
				continue
			}
			for i, res := range o.results {
				if sr.routes[i].tunnel {
					warm += res.warmConns
					conns += res.conns
					total += res.ops
				}
			}
		}
	}
	return warm, conns, total
}
