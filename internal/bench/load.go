package main

import (
	"context"
	"slices"
	"sync"
	"time"
)

// timing is how long each run lasts: warm-up first, unmeasured, then the
// measured part.
type timing struct {
	warmup, measure time.Duration
	runs            int // runs of each rate scenario; the one with the median ratio is reported
}

// window is the measured part of a run, from now on.
type window struct{ from, to time.Time }

func (t timing) window() window {
	from := time.Now().Add(t.warmup)
	return window{from: from, to: from.Add(t.measure)}
}

// opTimeout bounds one operation (a request with its body, a round trip),
// so that every run ends at most this long after its measured part.
const opTimeout = 10 * time.Second

// result is what one run measured.
type result struct {
	ops      int     // operations completed in the measured part
	perSec   float64 // ops per second; MiB/s for a transfer
	p50, p99 time.Duration
	total    int    // operations completed, warm-up included
	errs     int    // operations that failed, warm-up included
	firstErr string // the first failure, as an example
	dials    int64  // connections the load generator opened

	fail    string        // why a transfer or an event stream failed; "" if it did not
	bytes   int64         // that a transfer carried
	elapsed time.Duration // of a transfer
	growth  []int64       // KiB each watched process grew by during a transfer, at its peak
	omem    int64         // the most bytes Redis held in one client's output buffer meanwhile; -1 with no Redis

	cost // of the processes under test and of the load generator, filled in by the runner
}

// tally is one worker's share of a result.
type tally struct {
	lat      []time.Duration // measured part only
	total    int
	errs     int
	firstErr error
}

// closedLoop runs n workers, each calling op(ctx, worker) back to back,
// unmeasured until w.from. An operation counts if it completes in w; no
// worker starts one after w.to.
func closedLoop(parent context.Context, n int, w window, op func(ctx context.Context, worker int) error) (result, error) {
	ctx, cancel := context.WithDeadline(parent, w.to.Add(opTimeout))
	defer cancel()
	tallies := make([]tally, n)
	var wg sync.WaitGroup
	for i := range tallies {
		wg.Go(func() { work(ctx, i, w, op, &tallies[i]) })
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return result{}, err
	}
	return merge(tallies, w.to.Sub(w.from)), nil
}

// work is one worker's loop.
func work(ctx context.Context, i int, w window, op func(context.Context, int) error, t *tally) {
	for ctx.Err() == nil {
		start := time.Now()
		if !start.Before(w.to) {
			return
		}
		err := op(ctx, i)
		done := time.Now()
		t.total++
		if err != nil {
			t.errs++
			if t.firstErr == nil {
				t.firstErr = err
			}
			pause(ctx, 10*time.Millisecond) // no hot loop against a refusing peer
			continue
		}
		if !done.Before(w.from) && !done.After(w.to) {
			t.lat = append(t.lat, done.Sub(start))
		}
	}
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// merge sums the workers' tallies.
func merge(ts []tally, measured time.Duration) result {
	var r result
	var lat []time.Duration
	for _, t := range ts {
		lat = append(lat, t.lat...)
		r.total += t.total
		r.errs += t.errs
		if t.firstErr != nil && r.firstErr == "" {
			r.firstErr = t.firstErr.Error()
		}
	}
	slices.Sort(lat)
	r.ops = len(lat)
	r.perSec = float64(len(lat)) / measured.Seconds()
	r.p50, r.p99 = percentile(lat, 50), percentile(lat, 99)
	return r
}

// percentile is the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100 // ceil(n·p/100)
	return sorted[max(rank, 1)-1]
}
