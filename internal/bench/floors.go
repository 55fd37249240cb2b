package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

const (
	reuseCeiling  = 3.0  // new backend connections per 1,000 tunnel requests
	rssCeiling    = 40.0 // KiB of proxy memory per idle tunnel
	growthCeiling = 64.0 // MiB a proxy or client may grow by during a transfer
	besideFloor   = 0.8  // of a download's rate kept beside a slow visitor
	omemCeiling   = 8.0  // MiB Redis may hold for one client during a transfer
)

// floor is one line of the verdict.
type floor struct {
	what       string
	got, limit float64
	atMost     bool   // the limit is a ceiling
	fail       string // why it could not be measured: a FAIL whatever got is
}

func (r *report) floors() []floor {
	var fs []floor
	for _, sr := range r.suites {
		fs = append(fs, sr.floors()...)
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

// floors are the suite's verdicts, scenario by scenario; those of a
// system that did not start all fail.
func (sr *suiteReport) floors() []floor {
	var fs []floor
	if sr.startErr != "" {
		for _, sc := range sr.selected {
			fs = append(fs, sc.unmeasured(sr.name+"/"+sc.name(), sr.startErr)...)
		}
		return fs
	}
	for _, o := range sr.outcomes {
		fs = append(fs, o.floors(sr.name, sr.watched, sr.routes, o.results)...)
	}
	return append(fs, sr.besideFloors()...)
}

// besideFloors compare, route by route, a download beside a slow visitor
// with the same download alone: a slow reader holds back only its own
// stream.
func (sr *suiteReport) besideFloors() []floor {
	var alone, beside *outcome
	for i := range sr.outcomes {
		if t, ok := sr.outcomes[i].workload.(transfer); ok && !t.up {
			if t.beside {
				beside = &sr.outcomes[i]
			} else {
				alone = &sr.outcomes[i]
			}
		}
	}
	if alone == nil || beside == nil {
		return nil
	}
	var fs []floor
	for i, rt := range sr.routes {
		if !rt.tunnel || i >= len(alone.results) || i >= len(beside.results) {
			continue
		}
		a, b := alone.results[i], beside.results[i]
		f := floor{what: fmt.Sprintf("%s/%s %s beside/alone MiB/s, both complete and byte-exact", sr.name, beside.name(), rt.name),
			limit: besideFloor, fail: firstFail("alone", a, "beside", b)}
		if f.fail == "" {
			f.got = b.perSec / a.perSec
		}
		fs = append(fs, f)
	}
	return fs
}

// floors are the scenario's verdicts over routes, watched naming the
// CPU columns of its results.
func (sc scenario) floors(suite string, watched []string, routes []route, results []result) []floor {
	at := suite + "/" + sc.name()
	var fs []floor
	ref := results[0]
	for i, res := range results {
		rt := routes[i]
		if i > 0 && sc.floor > 0 {
			f := floor{what: fmt.Sprintf("%s %s/%s %s", at, rt.name, routes[0].name, sc.unit()),
				limit: sc.floor, fail: firstFail(routes[0].name, ref, rt.name, res)}
			if f.fail == "" {
				f.got = res.perSec / ref.perSec
			}
			fs = append(fs, f)
		}
		if !rt.tunnel {
			continue
		}
		fs = append(fs, sc.tunnelFloors(at+" "+rt.name, watched, res)...)
		if sc.kind() == kindTransfer {
			fs = append(fs, memoryFloors(at+" "+rt.name, watched, res)...)
		}
	}
	return fs
}

// tunnelFloors are the latency and CPU floors of one tunnel route;
// watched names the CPU columns of res.
func (sc scenario) tunnelFloors(at string, watched []string, res result) []floor {
	var fs []floor
	add := func(what string, d, limit time.Duration) {
		fs = append(fs, floor{what: at + " " + what, got: msOf(d), limit: msOf(limit), atMost: true, fail: res.fail})
	}
	if sc.p50Max > 0 {
		add("p50, ms", res.p50, sc.p50Max)
	}
	if sc.p99Max > 0 {
		add("p99, ms", res.p99, sc.p99Max)
	}
	if sc.cpuMax > 0 {
		var cpu time.Duration
		for i, name := range watched {
			if i < len(res.cpu) && (strings.HasPrefix(name, "proxy") || strings.HasPrefix(name, "client")) {
				cpu += res.cpu[i]
			}
		}
		add("proxy + client CPU per op, ms", cpu/time.Duration(max(res.ops, 1)), sc.cpuMax)
	}
	return fs
}

// unmeasured are the scenario's floors, all failing for why.
func (sc scenario) unmeasured(at, why string) []floor {
	why = "not measured: " + why
	var fs []floor
	add := func(what string, limit float64, atMost bool) {
		fs = append(fs, floor{what: at + " " + what, limit: limit, atMost: atMost, fail: why})
	}
	if sc.floor > 0 {
		add(sc.unit()+" ratio", sc.floor, false)
	}
	if sc.p50Max > 0 {
		add("p50, ms", msOf(sc.p50Max), true)
	}
	if sc.p99Max > 0 {
		add("p99, ms", msOf(sc.p99Max), true)
	}
	if sc.cpuMax > 0 {
		add("proxy + client CPU per op, ms", msOf(sc.cpuMax), true)
	}
	return fs
}

// unit names the scenario's rate.
func (sc scenario) unit() string {
	switch sc.kind() {
	case kindTransfer:
		return "MiB/s, complete and byte-exact"
	case kindEvents:
		return "events/s"
	}
	return "ops/s"
}

// firstFail is why the ratio of res over ref cannot be had, "" if it can.
func firstFail(refName string, ref result, name string, res result) string {
	switch {
	case res.fail != "":
		return name + " failed: " + res.fail
	case ref.fail != "":
		return refName + " failed: " + ref.fail
	case ref.perSec <= 0:
		return refName + " measured nothing"
	}
	return ""
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (f floor) write(w io.Writer) {
	pass, op := f.got >= f.limit, "≥"
	if f.atMost {
		pass, op = f.got <= f.limit, "≤"
	}
	if f.fail != "" {
		pass = false
	}
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s  %-66s %8.3f  (want %s %g)", verdict, f.what, f.got, op, f.limit)
	if f.fail != "" {
		fmt.Fprintf(w, "  %s", oneLine(strings.TrimSpace(f.fail)))
	}
	fmt.Fprintln(w)
}

// memoryFloors bound what a transfer made the proxies and the client
// grow by, and what Redis held for one of its clients, whatever the size
// of the body: credit keeps each within a window or two.
func memoryFloors(at string, watched []string, res result) []floor {
	var fs []floor
	for i, name := range watched {
		if i < len(res.growth) && (strings.HasPrefix(name, "proxy") || strings.HasPrefix(name, "client")) {
			fs = append(fs, floor{what: fmt.Sprintf("%s %s peak RSS growth, MiB", at, name),
				got: float64(res.growth[i]) / 1024, limit: growthCeiling, atMost: true, fail: res.fail})
		}
	}
	if res.omem >= 0 {
		fs = append(fs, floor{what: at + " redis client output buffer (omem), MiB",
			got: float64(res.omem) / (1 << 20), limit: omemCeiling, atMost: true, fail: res.fail})
	}
	return fs
}
