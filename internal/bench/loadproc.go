package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Subcommands: the benchmark starts its own binary as the backend and as
// the load generator, so that each runs in a process of its own.
const (
	backendCmd = "backend"
	loadCmd    = "load"
)

// runner runs workloads over the routes of one env: it starts a load
// generator process per run and samples the cost of the env's processes
// around it.
type runner struct {
	e    *env
	t    timing
	self string // the benchmark's binary
	wrk  string // wrk binary for the GET workloads; "" uses the benchmark's own generator
	dir  string // for the load generators' logs and wrk's script
	sums map[int64]string
}

// sum is the hex SHA-256 of the first n bytes of the pattern, computed
// once per length.
func (r *runner) sum(n int64) string {
	if s, ok := r.sums[n]; ok {
		return s
	}
	s := patternSum(n)
	r.sums[n] = s
	return s
}

// loop runs a closed-loop load generator for the runner's timing and
// samples the env's processes at the start and the end of the window the
// generator announces.
func (r *runner) loop(ctx context.Context, s loadSpec) (result, error) {
	s.Warmup, s.Measure = r.t.warmup, r.t.measure
	start := r.e.sample()
	var marks <-chan [2]sample
	lr, _, err := r.load(ctx, s, func(w window) { marks = r.e.sampleAt(ctx, w) })
	if err != nil {
		return result{}, err
	}
	if marks == nil {
		return result{}, errors.New("the load generator announced no window")
	}
	select {
	case m := <-marks:
		res := lr.result()
		res.cost = costOf(start, m[0], m[1]).withLoad(lr.CPU)
		return res, nil
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
}

// once runs a load generator for one operation and samples the env's
// processes before and after it, and their peak memory meanwhile.
func (r *runner) once(ctx context.Context, s loadSpec) (result, error) {
	start := r.e.sample()
	peaks := watchPeaks(r.e.pids())
	omem := watchOutputBuffers(r.e.redis)
	lr, cpu, err := r.load(ctx, s, nil)
	growth := peaks.stop()
	maxOmem := omem.stop()
	end := r.e.sample()
	if err != nil {
		return result{}, err
	}
	res := lr.result()
	res.cost = costOf(start, start, end).withLoad(cpu)
	res.growth, res.omem = growth, maxOmem
	return res, nil
}

// load starts the benchmark's binary as a load generator for s, calls
// onWindow with the measured window when the generator announces one,
// and returns the generator's result and CPU time. The generator is
// killed if it runs past what s allows.
func (r *runner) load(ctx context.Context, s loadSpec, onWindow func(window)) (loadResult, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Warmup+s.Measure+s.Timeout+2*opTimeout)
	defer cancel()
	arg, err := json.Marshal(s)
	if err != nil {
		return loadResult{}, 0, err
	}
	logPath := filepath.Join(r.dir, "load-"+s.Kind+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return loadResult{}, 0, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, r.self, loadCmd, string(arg))
	cmd.Stderr, cmd.Env, cmd.SysProcAttr = logf, childEnv(), procAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return loadResult{}, 0, err
	}
	if err := cmd.Start(); err != nil {
		return loadResult{}, 0, fmt.Errorf("start the load generator: %w", err)
	}
	res := readLoad(out, onWindow)
	err = cmd.Wait()
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if res == nil {
		return loadResult{}, cpu, fmt.Errorf("load generator %s: no result: %v%s", s.Kind, err, tail(logPath))
	}
	return *res, cpu, nil
}

// readLoad reads a load generator's lines to the end and returns its
// result, nil if it printed none.
func readLoad(out io.Reader, onWindow func(window)) *loadResult {
	var res *loadResult
	dec := json.NewDecoder(out)
	for {
		var l loadLine
		if dec.Decode(&l) != nil {
			io.Copy(io.Discard, out)
			return res
		}
		switch {
		case l.Result != nil:
			res = l.Result
		case l.From != 0 && onWindow != nil:
			onWindow(window{from: time.Unix(0, l.From), to: time.Unix(0, l.To)})
		}
	}
}

func (l loadResult) result() result {
	return result{ops: l.Ops, perSec: l.PerSec, p50: l.P50, p99: l.P99, total: l.Total, errs: l.Errs,
		firstErr: l.FirstErr, dials: l.Dials, fail: l.Fail, bytes: l.Bytes, elapsed: l.Elapsed}
}
