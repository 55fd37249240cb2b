package main

import (
	"context"
	"fmt"
	"time"
)

// transferTimeout bounds one large transfer of 256 MiB, and others in
// proportion: anything slower than about 13 MiB/s fails, far below any
// floor.
const transferTimeout = 20 * time.Second

// timeout bounds the transfer.
func (t transfer) timeout() time.Duration {
	return max(transferTimeout, transferTimeout*time.Duration(t.size/(256<<20)))
}

// sizeTransfers sets the size of the suite's transfers.
func (su *suite) sizeTransfers(size int64) {
	for i, sc := range su.scenarios {
		if t, ok := sc.workload.(transfer); ok {
			t.size = size
			su.scenarios[i].workload = t
		}
	}
}

// transfer is one large body, downloaded from the backend or uploaded to
// it, checked to the byte by its SHA-256. Its rate is MiB/s, and its CPU
// columns count per MiB.
type transfer struct {
	up     bool
	size   int64
	beside bool // a visitor reads another body at slowRate on the same tunnel meanwhile
}

// A slow visitor beside a transfer reads slowSize bytes at slowRate.
const (
	slowSize = 4 << 20
	slowRate = 1 << 20
)

func (t transfer) name() string {
	switch {
	case t.up:
		return "upload " + sizeName(int(t.size))
	case t.beside:
		return "download " + sizeName(int(t.size)) + " + slow"
	}
	return "download " + sizeName(int(t.size))
}

func (t transfer) kind() kind { return kindTransfer }

func (t transfer) run(ctx context.Context, r *runner, rt route) (result, error) {
	s := loadSpec{Kind: "download", URL: fmt.Sprintf("%s%s?n=%d", rt.base, blobPath, t.size),
		Dial: rt.dial, Size: t.size, Sum: r.sum(t.size), Timeout: t.timeout()}
	switch {
	case t.up:
		s.Kind, s.URL = "upload", rt.base+sinkPath
	case t.beside:
		s.Kind = "beside"
		s.SlowURL = fmt.Sprintf("%s%s?n=%d", rt.base, blobPath, slowSize)
		s.SlowSize, s.SlowSum, s.SlowRate = slowSize, r.sum(slowSize), slowRate
		s.Timeout = max(s.Timeout, 2*slowSize/slowRate*time.Second)
	}
	res, err := r.once(ctx, s)
	if err != nil {
		return res, err
	}
	res.ops = int(t.size >> 20) // CPU per MiB
	if res.fail == "" && res.elapsed > 0 {
		res.perSec = float64(t.size) / (1 << 20) / res.elapsed.Seconds()
	}
	return res, nil
}

// events is an event stream of n small events gap apart, each flushed by
// the backend on its own; its latencies are from the flush to the
// arrival at the load generator.
type events struct {
	n   int
	gap time.Duration
}

func (ev events) name() string { return fmt.Sprintf("SSE %d x %v", ev.n, ev.gap) }

func (ev events) kind() kind { return kindEvents }

func (ev events) run(ctx context.Context, r *runner, rt route) (result, error) {
	return r.once(ctx, loadSpec{Kind: "sse", URL: fmt.Sprintf("%s%s?n=%d&gap=%v", rt.base, eventPath, ev.n, ev.gap),
		Dial: rt.dial, Events: ev.n, Timeout: time.Duration(ev.n)*ev.gap + opTimeout})
}
