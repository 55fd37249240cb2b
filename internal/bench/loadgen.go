package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// loadSpec is what a load generator process (the benchmark started as
// "bench load <spec>") is asked to do, in JSON.
type loadSpec struct {
	Kind    string        `json:"kind"`              // one of loadKinds
	URL     string        `json:"url"`               // what to request, e.g. http://<label>.localhost:41234/1k
	Dial    string        `json:"dial"`              // where every connection goes, e.g. 127.0.0.1:41234
	Conns   int           `json:"conns,omitempty"`   // workers of a loop, each on its own connection
	Size    int64         `json:"size,omitempty"`    // bytes of a body or a message
	Sum     string        `json:"sum,omitempty"`     // hex SHA-256 a transfer must carry
	Events  int           `json:"events,omitempty"`  // events an event stream must carry
	Warmup  time.Duration `json:"warmup,omitempty"`  // of a loop, unmeasured
	Measure time.Duration `json:"measure,omitempty"` // of a loop
	Timeout time.Duration `json:"timeout,omitempty"` // bounds a transfer or an event stream

	// A download beside a slow one: SlowURL is read at SlowRate bytes a
	// second on a connection of its own from just before the download
	// to its own end, and must carry SlowSize bytes of SHA-256 SlowSum.
	SlowURL  string `json:"slow_url,omitempty"`
	SlowSize int64  `json:"slow_size,omitempty"`
	SlowSum  string `json:"slow_sum,omitempty"`
	SlowRate int64  `json:"slow_rate,omitempty"`
}

// loadResult is what a load generator measured.
type loadResult struct {
	Ops      int           `json:"ops"`   // operations (requests, round trips, events) measured
	Total    int           `json:"total"` // operations completed, warm-up included
	Errs     int           `json:"errs"`
	FirstErr string        `json:"first_err,omitempty"`
	Dials    int64         `json:"dials"`
	PerSec   float64       `json:"per_sec"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	CPU      time.Duration `json:"cpu"`               // its own CPU time in the measured window, for loops
	Bytes    int64         `json:"bytes,omitempty"`   // a transfer's bytes that arrived
	Elapsed  time.Duration `json:"elapsed,omitempty"` // from a transfer's request to its last byte
	Fail     string        `json:"fail,omitempty"`    // why a transfer or an event stream failed
}

// loadLine is one line a load generator prints: the measured window of a
// loop as soon as it is known, then the result.
type loadLine struct {
	From   int64       `json:"from,omitempty"` // Unix nanoseconds
	To     int64       `json:"to,omitempty"`
	Result *loadResult `json:"result,omitempty"`
}

// loadKinds are the load generator's operations: loops run workers for a
// window, the others run once.
var loadKinds = map[string]func(ctx context.Context, s loadSpec, out *json.Encoder) (loadResult, error){
	"get":      loopOf(getLoop),
	"ws":       loopOf(echoLoop),
	"download": onceOf(download),
	"beside":   onceOf(downloadBesideSlow),
	"upload":   onceOf(upload),
	"sse":      onceOf(readEvents),
}

// runLoad is the load generator process: it runs the spec in arg and
// prints its lines on stdout.
func runLoad(ctx context.Context, arg string, stdout io.Writer) error {
	var s loadSpec
	if err := json.Unmarshal([]byte(arg), &s); err != nil {
		return fmt.Errorf("load spec: %w", err)
	}
	run, ok := loadKinds[s.Kind]
	if !ok {
		return fmt.Errorf("load spec: unknown kind %q", s.Kind)
	}
	out := json.NewEncoder(stdout)
	res, err := run(ctx, s, out)
	if err != nil {
		return err
	}
	return out.Encode(loadLine{Result: &res})
}

// loopOf runs a closed loop for the spec's window, which it announces
// first, and measures its own CPU time in the window.
func loopOf(loop func(ctx context.Context, s loadSpec, w window) (result, error)) func(context.Context, loadSpec, *json.Encoder) (loadResult, error) {
	return func(ctx context.Context, s loadSpec, out *json.Encoder) (loadResult, error) {
		w := timing{warmup: s.Warmup, measure: s.Measure}.window()
		if err := out.Encode(loadLine{From: w.from.UnixNano(), To: w.to.UnixNano()}); err != nil {
			return loadResult{}, err
		}
		cpu := ownCPU(ctx, w)
		res, err := loop(ctx, s, w)
		if err != nil {
			return loadResult{}, err
		}
		lr := loadResult{Ops: res.ops, Total: res.total, Errs: res.errs, FirstErr: res.firstErr,
			Dials: res.dials, PerSec: res.perSec, P50: res.p50, P99: res.p99}
		select {
		case lr.CPU = <-cpu:
		case <-ctx.Done():
			return lr, ctx.Err()
		}
		return lr, nil
	}
}

// ownCPU sends this process's CPU time between the start and the end of
// w.
func ownCPU(ctx context.Context, w window) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	go func() {
		var at [2]time.Duration
		for i, t := range []time.Time{w.from, w.to} {
			pause(ctx, time.Until(t))
			if ctx.Err() != nil {
				return
			}
			at[i] = cpuTime(os.Getpid())
		}
		ch <- at[1] - at[0]
	}()
	return ch
}

// onceOf runs an operation once within the spec's timeout.
func onceOf(op func(ctx context.Context, s loadSpec) loadResult) func(context.Context, loadSpec, *json.Encoder) (loadResult, error) {
	return func(ctx context.Context, s loadSpec, _ *json.Encoder) (loadResult, error) {
		ctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		res := op(ctx, s)
		if res.Fail != "" && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Fail = fmt.Sprintf("not done within %v: %s", s.Timeout, res.Fail)
		}
		return res, nil
	}
}
