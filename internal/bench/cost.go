package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cost is what the measured part of a run cost the system under test,
// and what the rest of the machine did meanwhile.
type cost struct {
	warmConns int64           // new backend connections during the warm-up
	conns     int64           // new backend connections in the measured part
	cpu       []time.Duration // CPU time of each watched process, then of the load generator, in the measured part
	others    time.Duration   // CPU time of every other process in the measured part
	steal     time.Duration   // CPU time the hypervisor took from this machine meanwhile
	span      time.Duration   // wall-clock time of the measured part
}

// watched is a process whose CPU time the runs report.
type watched struct {
	name string
	pid  int
}

// sample is the state of the counters at one moment.
type sample struct {
	at    time.Time
	conns int64
	cpu   []time.Duration
	self  time.Duration // of the benchmark's own process, which only coordinates
	busy  time.Duration // of the whole machine
	steal time.Duration // of the whole machine, by its hypervisor
}

func (e *env) sample() sample {
	s := sample{at: time.Now(), conns: e.backend.conns(), self: cpuTime(os.Getpid())}
	s.busy, s.steal = machineTimes()
	for _, w := range e.watched {
		s.cpu = append(s.cpu, cpuTime(w.pid))
	}
	return s
}

// pids are the watched processes' ids.
func (e *env) pids() []int {
	var ps []int
	for _, w := range e.watched {
		ps = append(ps, w.pid)
	}
	return ps
}

// sampleAt samples at the start and at the end of w, and sends both;
// nothing if ctx ends first.
func (e *env) sampleAt(ctx context.Context, w window) <-chan [2]sample {
	ch := make(chan [2]sample, 1)
	go func() {
		var s [2]sample
		for i, at := range []time.Time{w.from, w.to} {
			timer := time.NewTimer(time.Until(at))
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
			s[i] = e.sample()
		}
		ch <- s
	}()
	return ch
}

// costOf is the cost between samples: start of the run, start and end of
// the measured part.
func costOf(start, from, to sample) cost {
	c := cost{warmConns: from.conns - start.conns, conns: to.conns - from.conns, steal: to.steal - from.steal, span: to.at.Sub(from.at)}
	c.others = to.busy - from.busy - (to.self - from.self)
	for i := range to.cpu {
		c.cpu = append(c.cpu, to.cpu[i]-from.cpu[i])
		c.others -= c.cpu[i]
	}
	c.others = max(c.others, 0)
	return c
}

// withLoad adds the load generator's CPU time to c, as its last column.
func (c cost) withLoad(cpu time.Duration) cost {
	c.cpu = append(c.cpu, cpu)
	c.others = max(c.others-cpu, 0)
	return c
}

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat times, which
// is 100 on every architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the user and system CPU time of a process (all its threads)
// from /proc/PID/stat; 0 if it cannot be read.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is the first, utime the 12th and stime the 13th.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * clockTick
}

// machineTimes is the user and system CPU time of the whole machine since
// boot, from /proc/stat (like cpuTime it leaves out interrupts, so that
// busy − Σ cpuTime is what other processes used), and the time its
// hypervisor ran something else instead (steal).
func machineTimes() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if err != nil || len(f) < 4 || f[0] != "cpu" {
		return 0, 0
	}
	var ticks int64
	for _, v := range f[1:4] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	var stolen int64
	if len(f) > 8 {
		stolen, _ = strconv.ParseInt(f[8], 10, 64)
	}
	return time.Duration(ticks) * clockTick, time.Duration(stolen) * clockTick
}

// loadAvg is the first three fields of /proc/loadavg, "?" if unknown.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
