package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFloorsOfTransfersAndUnmeasuredSuites(t *testing.T) {
	routes := []route{{name: "direct"}, {name: "tunnel", tunnel: true}}
	get := scenario{workload: httpGet{path: "/1k", conns: 64}, floor: 0.25, cpuMax: 70 * time.Microsecond}
	down := scenario{workload: transfer{size: large}, floor: 0.25}
	sse := scenario{workload: events{n: 200, gap: 10 * time.Millisecond}, p99Max: ms20}
	watched := []string{"backend", "proxy", "client"}
	r := report{suites: []*suiteReport{
		{suite: &suite{name: "one-node"}, routes: routes, watched: watched, outcomes: []outcome{
			{scenario: get, results: []result{{perSec: 1000}, {perSec: 300, ops: 1000,
				cost: cost{cpu: []time.Duration{0, 40 * time.Millisecond, 40 * time.Millisecond, 0}}}}}, // 80 µs per request
			{scenario: sse, results: []result{{p99: time.Millisecond}, {p99: 5 * time.Millisecond}}},
		}},
		{suite: &suite{name: "one-node-nocap"}, routes: routes, watched: watched, outcomes: []outcome{
			{scenario: down, results: []result{{perSec: 1000}, {fail: "cut off after 5 bytes"}}},
		}},
		{suite: &suite{name: "two-node-nocap"}, selected: []scenario{down}, startErr: "proxy-a: --max-body must be positive"},
	}}
	var b bytes.Buffer
	for _, f := range r.floors() {
		f.write(&b)
	}
	for _, want := range []string{
		"PASS  one-node/GET 1KiB x64 tunnel/direct ops/s",
		"FAIL  one-node/GET 1KiB x64 tunnel proxy + client CPU per op, ms",
		"PASS  one-node/SSE 200 x 10ms tunnel p99, ms",
		"FAIL  one-node-nocap/download 256MiB tunnel/direct MiB/s, complete and byte-exact",
		"tunnel failed: cut off after 5 bytes",
		"FAIL  two-node-nocap/download 256MiB MiB/s, complete and byte-exact ratio",
		"(want ≥ 0.25)  not measured: proxy-a: --max-body must be positive",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("floors lack %q; got:\n%s", want, b.String())
		}
	}
}

// TestTransferRunsKeepTheWorst: of a transfer run three times, the run
// with the median ratio stands for its rate, but a break in any run is
// its failure and its memory is the highest of the runs.
func TestTransferRunsKeepTheWorst(t *testing.T) {
	run := func(direct, tunnel float64, fail string, growth, omem int64) outcome {
		return outcome{scenario: scenario{workload: transfer{size: large}}, results: []result{
			{perSec: direct, growth: []int64{0, 0}, omem: 0},
			{perSec: tunnel, fail: fail, growth: []int64{growth, 1}, omem: omem},
		}}
	}
	runs := []outcome{run(1000, 500, "", 2048, 10), run(1000, 300, "", 9000, 5), run(1000, 400, "", 4096, 7)}
	out := median(runs)
	worstOf(&out, runs)
	res := out.results[1]
	if res.perSec != 400 || res.fail != "" || res.growth[0] != 9000 || res.growth[1] != 1 || res.omem != 10 {
		t.Errorf("got %v MiB/s, fail %q, growth %v, omem %d; want the median 400, no failure, growth [9000 1], omem 10",
			res.perSec, res.fail, res.growth, res.omem)
	}

	runs = []outcome{run(1000, 500, "", 1, 0), run(1000, 0, "sha256 mismatch", 1, 0), run(1000, 450, "", 1, 0)}
	out = median(runs)
	worstOf(&out, runs)
	if res := out.results[1]; res.fail != "sha256 mismatch" {
		t.Errorf("a run that broke left fail %q on the transfer, want its failure", res.fail)
	}
}
