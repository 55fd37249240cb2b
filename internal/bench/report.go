package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	reuseCeiling = 3.0  // new backend connections per 1,000 tunnel requests
	rssCeiling   = 40.0 // KiB of proxy memory per idle tunnel
)

// report is everything the benchmark measured.
type report struct {
	timing timing
	limits limits // the proxy's defaults, turned off for the runs
	suites []*suiteReport
	rss    *rssResult
	errs   []string // what could not be measured
}

// suiteReport is what the runs on one system measured.
type suiteReport struct {
	*suite
	routes   []route
	watched  []string // names of the processes in the CPU columns
	outcomes []outcome
	load     [2]string      // /proc/loadavg before and after the runs
	counters []nodeCounters // each proxy's counters that changed during the runs
}

// nodeCounters are the counters of one proxy.
type nodeCounters struct {
	name string
	counters
}

func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "keyhole end-to-end benchmark: %d CPUs, %s %s/%s, loopback; each run %v warm-up + %v measured\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, r.timing.warmup, r.timing.measure)
	fmt.Fprintf(w, "proxy limits off for the runs (--tunnel-rate 0 --client-rate 0 --register-rate 0 --register-global-rate 0); defaults: --tunnel-rate %s requests/s per hostname, --client-rate %s messages/s per client link\n",
		r.limits.tunnelRate, r.limits.clientRate)
	for _, sr := range r.suites {
		if len(sr.outcomes) > 0 {
			fmt.Fprintf(w, "\n%s: %s\n", sr.name, sr.about)
			sr.writeTable(w, r.timing.measure)
		}
	}
	if r.measured() {
		fmt.Fprintf(w, "ops are requests (GET) or round trips (WS echo), counted and timed when they complete in the measured part;\n"+
			"ratio: ops/s over the ops/s of the first route of the scenario;\n"+
			"bk-warm: new backend connections during the warm-up; bk/1k: new backend connections per 1,000 requests in the measured part;\n"+
			"process columns: CPU µs per op of each process in the measured part (bench is the load generator and the backend);\n"+
			"others: CPUs (of %d) that other processes on this machine kept busy meanwhile; well above 0, the ratios are unreliable\n\n",
			runtime.NumCPU())
	}
	r.writeNotes(w)
	if r.rss != nil {
		r.writeRSS(w)
	}
	fmt.Fprintln(w, "\nfloors")
	for _, f := range r.floors() {
		f.write(w)
	}
	for _, e := range r.errs {
		fmt.Fprintf(w, "ERROR %s\n", e)
	}
}

// measured says whether any scenario ran to the end.
func (r *report) measured() bool {
	for _, sr := range r.suites {
		if len(sr.outcomes) > 0 {
			return true
		}
	}
	return false
}

func (sr *suiteReport) writeTable(w io.Writer, measured time.Duration) {
	const row = "%-17s %-6s %8s %6s %9s %9s %6s %8s %7s"
	fmt.Fprintf(w, row, "scenario", "route", "ops/s", "ratio", "p50", "p99", "errors", "bk-warm", "bk/1k")
	for _, n := range sr.watched {
		fmt.Fprintf(w, " %7s", n)
	}
	fmt.Fprintf(w, " %7s\n", "others")
	for _, o := range sr.outcomes {
		ref := o.results[0]
		for i, res := range o.results {
			name, ratio, warm, reuse := o.name(), "", "", ""
			if i > 0 {
				name, ratio = "", fmt.Sprintf("%.2f", res.perSec/ref.perSec)
			}
			if sr.routes[i].tunnel {
				warm = strconv.FormatInt(res.warmConns, 10)
				if o.requests() {
					reuse = fmt.Sprintf("%.2f", perThousand(res.conns, res.ops))
				}
			}
			fmt.Fprintf(w, row, name, sr.routes[i].name, fmt.Sprintf("%.0f", res.perSec), ratio,
				ms(res.p50), ms(res.p99), strconv.Itoa(res.errs), warm, reuse)
			for _, c := range res.cpu {
				fmt.Fprintf(w, " %7.1f", perOp(c, res.ops))
			}
			fmt.Fprintf(w, " %7.2f\n", res.others.Seconds()/measured.Seconds())
		}
	}
}

// writeNotes says what else the runs showed: reuse overall, errors,
// connections the load generator had to open again, limits the defaults
// would have applied, the proxies' counters.
func (r *report) writeNotes(w io.Writer) {
	warm, conns, total := r.reuse()
	fmt.Fprintf(w, "backend connection reuse: %d new backend connections for %d tunnel requests in the measured parts = %.2f per 1,000 (and %d during the warm-ups)\n",
		conns, total, perThousand(conns, total), warm)
	for _, sr := range r.suites {
		fmt.Fprintf(w, "load average (1, 5, 15 min) before the %s runs %s, after %s, on %d CPUs\n", sr.name, sr.load[0], sr.load[1], runtime.NumCPU())
	}
	for _, sr := range r.suites {
		for _, o := range sr.outcomes {
			for i, res := range o.results {
				at := sr.name + "/" + o.name() + " " + sr.routes[i].name
				if res.errs > 0 {
					fmt.Fprintf(w, "ERRORS %s: %d of %d operations failed; first: %s\n", at, res.errs, res.total, res.firstErr)
				}
				switch g := o.workload.(type) {
				case httpGet:
					// A few extra dials are the load generator's transport
					// racing its own connection's return to the pool; many
					// mean that the other side closes connections.
					if res.dials > int64(2*g.conns) {
						fmt.Fprintf(w, "note %s: the load generator opened %d connections for %d workers\n", at, res.dials, g.conns)
					}
				case wsEcho:
					if res.dials > int64(g.conns) {
						fmt.Fprintf(w, "note %s: the load generator dialled %d sockets for %d workers\n", at, res.dials, g.conns)
					}
				}
				if rate, err := strconv.ParseFloat(r.limits.tunnelRate, 64); err == nil && rate > 0 && sr.routes[i].tunnel && o.requests() && res.perSec > rate {
					fmt.Fprintf(w, "note %s: %.0f requests/s is over the default --tunnel-rate %s\n", at, res.perSec, r.limits.tunnelRate)
				}
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
			if !o.requests() {
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

// floor is one line of the verdict.
type floor struct {
	what       string
	got, limit float64
	atMost     bool // the limit is a ceiling
}

func (r *report) floors() []floor {
	var fs []floor
	for _, sr := range r.suites {
		for _, o := range sr.outcomes {
			for i, res := range o.results[1:] {
				fs = append(fs, floor{what: fmt.Sprintf("%s %s/%s ops/s", o.name(), sr.routes[i+1].name, sr.routes[0].name),
					got: res.perSec / o.results[0].perSec, limit: o.floor})
			}
		}
	}
	if _, conns, total := r.reuse(); total > 0 {
		fs = append(fs, floor{what: "new backend connections per 1,000 tunnel requests",
			got: perThousand(conns, total), limit: reuseCeiling, atMost: true})
	}
	if r.rss != nil {
		fs = append(fs, floor{what: "proxy RSS per idle tunnel, KiB", got: r.rss.perTunnel(), limit: rssCeiling, atMost: true})
	}
	return fs
}

func (f floor) write(w io.Writer) {
	pass, op := f.got >= f.limit, "≥"
	if f.atMost {
		pass, op = f.got <= f.limit, "≤"
	}
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s  %-52s %8.3f  (want %s %g)\n", verdict, f.what, f.got, op, f.limit)
}

// perOp is a duration per operation in microseconds.
func perOp(d time.Duration, ops int) float64 {
	if ops == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(ops)
}

func perThousand(n int64, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) * 1000 / float64(of)
}

// ms formats a latency: microseconds below a millisecond, else
// milliseconds.
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
