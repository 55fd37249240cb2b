package limiter

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestTunnelsRefusesPastBurst(t *testing.T) {
	tests := []struct {
		name      string
		perSecond float64
		wantBurst int
		wantRetry time.Duration
	}{
		{"one a second", 1, 2, time.Second},
		{"ten a second", 10, 20, 100 * time.Millisecond},
		{"one every ten seconds", 0.1, 1, 10 * time.Second},
		{"burst capped", 100_000, maxBurst, 10 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewTunnels(tt.perSecond)
			for i := range tt.wantBurst {
				if ok, retry := l.Allow("a", epoch); !ok {
					t.Fatalf("request %d within burst: got refused (retry %v), want allowed", i, retry)
				}
			}
			ok, retry := l.Allow("a", epoch)
			if ok {
				t.Fatalf("request past burst %d: got allowed, want refused", tt.wantBurst)
			}
			if retry != tt.wantRetry {
				t.Errorf("retryAfter: got %v, want %v", retry, tt.wantRetry)
			}
			if ok, _ := l.Allow("b", epoch); !ok {
				t.Error("another label at the same instant: got refused, want allowed")
			}
			if ok, retry := l.Allow("a", epoch.Add(tt.wantRetry)); !ok {
				t.Errorf("request after retryAfter: got refused (retry %v), want allowed", retry)
			}
		})
	}
}

func TestTunnelsRetryAfterShrinks(t *testing.T) {
	l := NewTunnels(1)
	l.Allow("a", epoch)
	l.Allow("a", epoch)
	tests := []struct {
		at   time.Duration
		want time.Duration
	}{
		{0, time.Second},
		{250 * time.Millisecond, 750 * time.Millisecond},
		{900 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.at.String(), func(t *testing.T) {
			ok, got := l.Allow("a", epoch.Add(tt.at))
			if ok || got != tt.want {
				t.Errorf("Allow at +%v: got (%v, %v), want (false, %v)", tt.at, ok, got, tt.want)
			}
		})
	}
}

func TestTunnelsUnlimited(t *testing.T) {
	for _, perSecond := range []float64{0, math.Inf(1)} {
		t.Run(fmt.Sprint(perSecond), func(t *testing.T) {
			l := NewTunnels(perSecond)
			for i := range 10_000 {
				if ok, retry := l.Allow(strconv.Itoa(i%10), epoch); !ok || retry != 0 {
					t.Fatalf("request %d: got (%v, %v), want (true, 0)", i, ok, retry)
				}
			}
			if got := l.Len(); got != 0 {
				t.Errorf("Len: got %d, want 0", got)
			}
		})
	}
}

func TestTunnelsEvictionBoundsLen(t *testing.T) {
	const labels = 100_000
	tests := []struct {
		name    string
		step    time.Duration // clock advance per request
		wantMax int
	}{
		// One request per label at 10/s refills in 100ms; sweeps run every
		// 2s (the fill time of a burst of 20), so at most (2s+100ms)/1ms
		// labels are remembered at once.
		{"clock advancing", time.Millisecond, 2100},
		// All at one instant nothing refills: only the hard cap holds.
		{"clock stopped", 0, maxLabels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewTunnels(10)
			now := epoch
			peak := 0
			for i := range labels {
				if ok, _ := l.Allow("label-"+strconv.Itoa(i), now); !ok {
					t.Fatalf("first request of label %d: got refused, want allowed", i)
				}
				if i%1000 == 0 {
					peak = max(peak, l.Len())
				}
				now = now.Add(tt.step)
			}
			peak = max(peak, l.Len())
			if peak > tt.wantMax {
				t.Errorf("peak Len after %d labels: got %d, want at most %d", labels, peak, tt.wantMax)
			}
		})
	}
}

func TestTunnelsSweepKeepsDrainedLimiters(t *testing.T) {
	l := NewTunnels(1) // burst 2, fill time 2s, sweep every 2s
	now := epoch
	l.Allow("busy", now)
	l.Allow("busy", now)
	// Many other labels over 1.5s: sweeps run, but "busy" has refilled only
	// 1.5 tokens of 2, so it must survive with its state.
	for i := range 1500 {
		now = epoch.Add(time.Duration(i) * time.Millisecond)
		l.Allow("other-"+strconv.Itoa(i), now)
	}
	l.Allow("busy", now) // takes 1 of 1.5 tokens
	if ok, retry := l.Allow("busy", now); ok {
		t.Errorf("drained label after sweeps: got allowed, want refused")
	} else if want := 500 * time.Millisecond; retry < want-time.Millisecond || retry > want+time.Millisecond {
		t.Errorf("retryAfter: got %v, want about %v", retry, want)
	}
}

func TestTunnelsConcurrent(t *testing.T) {
	const goroutines, each = 16, 200
	t.Run("one label at one instant allows exactly the burst", func(t *testing.T) {
		l := NewTunnels(10)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range each {
					if ok, _ := l.Allow("shared", epoch); ok {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := allowed.Load(); got != 20 {
			t.Errorf("allowed: got %d, want burst 20", got)
		}
	})
	t.Run("many labels with a real clock", func(t *testing.T) {
		l := NewTunnels(1000)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					l.Allow(strconv.Itoa((g*each+i)%97), time.Now())
					if i%50 == 0 {
						l.Len()
					}
				}
			})
		}
		wg.Wait()
		if got := l.Len(); got > 97 {
			t.Errorf("Len: got %d, want at most 97", got)
		}
	})
}

func TestTunnelsAllowExistingLabelDoesNotAllocate(t *testing.T) {
	l := NewTunnels(10)
	l.Allow("a", epoch)
	now := epoch
	got := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		l.Allow("a", now) // allowed while the burst lasts, then refused
	})
	if got != 0 {
		t.Errorf("allocs per Allow: got %v, want 0", got)
	}
}

func BenchmarkTunnelsAllow(b *testing.B) {
	l := NewTunnels(1e6)
	label := "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	l.Allow(label, time.Now())
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Allow(label, time.Now())
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow(label, time.Now())
			}
		})
	})
}
