package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is everything the benchmark measured.
type report struct {
	timing timing
	limits limits // the proxy's defaults, turned off for the runs
	wrk    string // wrk's version, "none" if the benchmark's own generator ran the GETs
	suites []*suiteReport
	rss    *rssResult
	errs   []string // what could not be measured
}

// suiteReport is what the runs on one system measured.
type suiteReport struct {
	*suite
	selected []scenario // the scenarios -run chose
	startErr string     // why a soft suite's system did not start
	routes   []route
	watched  []string // names of the processes in the CPU columns, the load generator left out
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
	fmt.Fprintf(w, "keyhole end-to-end benchmark: %d CPUs, %s %s/%s, loopback; each run %v warm-up + %v measured; each rate scenario run %d times, the run with the median ratio reported\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, r.timing.warmup, r.timing.measure, r.timing.runs)
	fmt.Fprintf(w, "proxy limits off for the runs (--tunnel-rate 0 --client-rate 0 --register-rate 0 --register-global-rate 0); defaults: --tunnel-rate %s requests/s per hostname, --client-rate %s messages/s per client link\n",
		r.limits.tunnelRate, r.limits.clientRate)
	fmt.Fprintf(w, "the backend and each load generator run in processes of their own; HTTP GETs: %s; the rest: the benchmark's own generator\n",
		r.generator())
	for _, sr := range r.suites {
		sr.write(w)
	}
	if r.measured() {
		r.writeLegend(w)
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
		fmt.Fprintf(w, "ERROR %s\n", oneLine(e))
	}
}

func (r *report) generator() string {
	if r.wrk == "none" {
		return "the benchmark's own generator (no wrk found)"
	}
	return r.wrk + " (whole seconds)"
}

func (r *report) writeLegend(w io.Writer) {
	fmt.Fprintf(w, "\nops are requests (GET), round trips (WS echo) or events (SSE), counted and timed when they complete in the measured part;\n"+
		"a transfer is one request whose body is checked by length and SHA-256, timed from the request to its last byte;\n"+
		"  run several times, it shows the run with the median ratio, and the first failure and the highest memory of all its runs;\n"+
		"ratio: rate over the rate of the first route of the scenario;\n"+
		"bk-warm: new backend connections during the warm-up; bk/1k: new backend connections per 1,000 requests in the measured part;\n"+
		"process columns: CPU µs per op (per MiB for transfers) of each process in the measured part; load is the load generator;\n"+
		"SSE latency: from the backend's flush (the time in each event) to the event's arrival at the load generator;\n"+
		"others: CPUs (of %d) that other processes on this machine kept busy meanwhile; steal: CPUs the hypervisor took from this\n"+
		"  virtual machine meanwhile; either well above 0, the ratios are unreliable\n\n",
		runtime.NumCPU())
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

// write prints the suite's tables, one per kind of traffic that ran.
func (sr *suiteReport) write(w io.Writer) {
	if sr.startErr != "" {
		fmt.Fprintf(w, "\n%s: %s\nNOT MEASURED: the system did not start: %s\n", sr.name, sr.about, oneLine(sr.startErr))
		return
	}
	if len(sr.outcomes) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s: %s\n", sr.name, sr.about)
	tables := []struct {
		of    func(kind) bool
		write func(io.Writer, []outcome)
	}{
		{kind.rate, sr.writeRates},
		{func(k kind) bool { return k == kindEvents }, sr.writeEvents},
		{func(k kind) bool { return k == kindTransfer }, sr.writeTransfers},
	}
	for _, t := range tables {
		var outs []outcome
		for _, o := range sr.outcomes {
			if t.of(o.kind()) {
				outs = append(outs, o)
			}
		}
		if len(outs) > 0 {
			t.write(w, outs)
		}
	}
}

// processHeader prints the names of the CPU columns and of others.
func (sr *suiteReport) processHeader(w io.Writer) {
	for _, n := range append(slices.Clone(sr.watched), "load") {
		fmt.Fprintf(w, " %7s", n)
	}
	fmt.Fprintf(w, " %7s %6s\n", "others", "steal")
}

// processColumns prints the CPU per operation of each process and how
// busy the rest of the machine was.
func processColumns(w io.Writer, res result) {
	for _, c := range res.cpu {
		fmt.Fprintf(w, " %7.1f", perOp(c, res.ops))
	}
	busy, steal := 0.0, 0.0
	if res.span > 0 {
		busy = res.others.Seconds() / res.span.Seconds()
		steal = res.steal.Seconds() / res.span.Seconds()
	}
	fmt.Fprintf(w, " %7.2f %6.2f\n", busy, steal)
}

func (sr *suiteReport) writeRates(w io.Writer, outs []outcome) {
	const row = "%-18s %-6s %8s %6s %9s %9s %6s %8s %7s"
	fmt.Fprintf(w, row, "scenario", "route", "ops/s", "ratio", "p50", "p99", "errors", "bk-warm", "bk/1k")
	sr.processHeader(w)
	for _, o := range outs {
		ref := o.results[0]
		for i, res := range o.results {
			name, ratio, warm, reuse := o.name(), "", "", ""
			if i > 0 {
				name, ratio = "", fmt.Sprintf("%.2f", res.perSec/ref.perSec)
			}
			if sr.routes[i].tunnel {
				warm = strconv.FormatInt(res.warmConns, 10)
				if o.kind() == kindRequests {
					reuse = fmt.Sprintf("%.2f", perThousand(res.conns, res.ops))
				}
			}
			fmt.Fprintf(w, row, name, sr.routes[i].name, fmt.Sprintf("%.0f", res.perSec), ratio,
				ms(res.p50), ms(res.p99), strconv.Itoa(res.errs), warm, reuse)
			processColumns(w, res)
		}
		writeRatios(w, o)
	}
}

// writeRatios lists the ratios of a scenario run more than once.
func writeRatios(w io.Writer, o outcome) {
	if len(o.ratios) <= 1 {
		return
	}
	rs := make([]string, len(o.ratios))
	for i, r := range o.ratios {
		rs[i] = fmt.Sprintf("%.2f", r)
	}
	fmt.Fprintf(w, "%-18s ratios of the %d runs: %s (the median run shown)\n", "", len(rs), strings.Join(rs, " "))
}

func (sr *suiteReport) writeEvents(w io.Writer, outs []outcome) {
	const row = "%-18s %-6s %8s %9s %9s"
	fmt.Fprintf(w, row, "scenario", "route", "events", "p50", "p99")
	sr.processHeader(w)
	for _, o := range outs {
		for i, res := range o.results {
			fmt.Fprintf(w, row, nameOnce(o, i), sr.routes[i].name, strconv.Itoa(res.ops), ms(res.p50), ms(res.p99))
			if res.fail != "" {
				fmt.Fprintf(w, "  FAILED: %s\n", oneLine(res.fail))
				continue
			}
			processColumns(w, res)
		}
	}
}

func (sr *suiteReport) writeTransfers(w io.Writer, outs []outcome) {
	const row = "%-18s %-6s %8s %6s %8s"
	fmt.Fprintf(w, row, "scenario", "route", "MiB/s", "ratio", "time")
	sr.processHeader(w)
	for _, o := range outs {
		ref := o.results[0]
		for i, res := range o.results {
			rate, ratio := "-", ""
			if res.fail == "" {
				rate = fmt.Sprintf("%.0f", res.perSec)
			}
			if i > 0 && ref.fail == "" && res.fail == "" {
				ratio = fmt.Sprintf("%.2f", res.perSec/ref.perSec)
			}
			fmt.Fprintf(w, row, nameOnce(o, i), sr.routes[i].name, rate, ratio, fmt.Sprintf("%.2fs", res.elapsed.Seconds()))
			if res.fail != "" {
				fmt.Fprintf(w, "  FAILED: %s\n", oneLine(res.fail))
				continue
			}
			processColumns(w, res)
		}
		writeRatios(w, o)
	}
	fmt.Fprintf(w, "%-18s %-6s", "peak RSS growth", "MiB")
	for _, n := range sr.watched {
		fmt.Fprintf(w, " %7s", n)
	}
	fmt.Fprintf(w, " %10s\n", "redis omem")
	for _, o := range outs {
		for i, res := range o.results {
			fmt.Fprintf(w, "%-18s %-6s", nameOnce(o, i), sr.routes[i].name)
			for _, g := range res.growth {
				fmt.Fprintf(w, " %7.1f", float64(g)/1024)
			}
			if res.omem >= 0 {
				fmt.Fprintf(w, " %10.2f", float64(res.omem)/(1<<20))
			}
			fmt.Fprintln(w)
		}
	}
}

// nameOnce is the scenario's name on its first row, blank below.
func nameOnce(o outcome, i int) string {
	if i > 0 {
		return ""
	}
	return o.name()
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

// oneLine is s on one line, shortened to a few hundred characters.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
