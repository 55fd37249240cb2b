package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print its summary as one line of JSON at the end.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrkSummary is what wrkScript prints.
type wrkSummary struct {
	Requests   int   `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Connect    int   `json:"connect"`
	Read       int   `json:"read"`
	Write      int   `json:"write"`
	Status     int   `json:"status"` // answers other than 2xx and 3xx
	Timeout    int   `json:"timeout"`
	P50US      int64 `json:"p50_us"`
	P99US      int64 `json:"p99_us"`
}

// findWrk is the wrk binary to use, "" if there is none.
func findWrk(name string) string {
	if name == "" {
		return ""
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return path
}

// wrkVersion is the first line wrk -v prints.
func wrkVersion(ctx context.Context, wrk string) string {
	out, _ := exec.CommandContext(ctx, wrk, "-v").CombinedOutput() // exits 1 after printing it
	line, _, _ := strings.Cut(string(out), "\n")
	if line == "" {
		return "wrk"
	}
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}

// wrkLoop runs wrk for the warm-up, then again for the measured part,
// sampling the env's processes around the second.
func (r *runner) wrkLoop(ctx context.Context, rt route, g httpGet) (result, error) {
	start := r.e.sample()
	if r.t.warmup > 0 {
		if _, _, err := r.runWrk(ctx, rt, g, r.t.warmup); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	from := r.e.sample()
	sum, cpu, err := r.runWrk(ctx, rt, g, r.t.measure)
	to := r.e.sample()
	if err != nil {
		return result{}, err
	}
	res := sum.result()
	res.dials = int64(g.conns)
	res.cost = costOf(start, from, to).withLoad(cpu)
	return res, nil
}

// runWrk runs wrk for d, rounded up to whole seconds (wrk's unit), with
// g's connections against rt, and returns its summary and CPU time.
func (r *runner) runWrk(ctx context.Context, rt route, g httpGet, d time.Duration) (wrkSummary, time.Duration, error) {
	script := filepath.Join(r.dir, "summary.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return wrkSummary{}, 0, err
	}
	u, err := url.Parse(rt.base)
	if err != nil {
		return wrkSummary{}, 0, err
	}
	secs := max(1, int(math.Ceil(d.Seconds())))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+2*opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.wrk, "-t", strconv.Itoa(min(g.conns, runtime.NumCPU())),
		"-c", strconv.Itoa(g.conns), "-d", strconv.Itoa(secs)+"s", "--timeout", opTimeout.String(),
		"-s", script, "-H", "Host: "+u.Host, "http://"+rt.dial+g.path)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Env, cmd.SysProcAttr = &out, &errOut, childEnv(), procAttr()
	err = cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return wrkSummary{}, cpu, fmt.Errorf("wrk: %w: %s%s", err, strings.TrimSpace(errOut.String()), strings.TrimSpace(out.String()))
	}
	return parseWrk(out.String(), cpu)
}

// parseWrk reads the summary line from wrk's output.
func parseWrk(out string, cpu time.Duration) (wrkSummary, time.Duration, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var s wrkSummary
	last := lines[len(lines)-1]
	if err := json.Unmarshal([]byte(last), &s); err != nil || s.DurationUS <= 0 {
		return s, cpu, fmt.Errorf("wrk printed no summary: %q", out)
	}
	return s, cpu, nil
}

// result is the summary as the other load generators report theirs.
func (s wrkSummary) result() result {
	res := result{ops: s.Requests, total: s.Requests,
		perSec: float64(s.Requests) / (float64(s.DurationUS) / 1e6),
		p50:    time.Duration(s.P50US) * time.Microsecond, p99: time.Duration(s.P99US) * time.Microsecond}
	res.errs = s.Connect + s.Read + s.Write + s.Status + s.Timeout
	if res.errs > 0 {
		res.firstErr = fmt.Sprintf("wrk counted %d connect, %d read, %d write, %d timeout errors and %d answers not 2xx or 3xx",
			s.Connect, s.Read, s.Write, s.Timeout, s.Status)
	}
	return res
}
