package main

import (
	"fmt"
	"os"
	"time"
)

// peakInterval is how often peaks samples the resident memory.
const peakInterval = 5 * time.Millisecond

// peaks follows how far the resident memory of processes grows during a
// transfer: from VmRSS at the start to the higher of VmHWM (the kernel's
// peak, reset at the start where /proc/PID/clear_refs allows) and the
// highest VmRSS sampled meanwhile.
type peaks struct {
	pids  []int
	base  []int64 // KiB at the start
	reset []bool  // the kernel's peak was reset at the start
	top   []int64 // highest KiB sampled; written by the sampler until done
	quit  chan struct{}
	done  chan struct{}
}

func watchPeaks(pids []int) *peaks {
	p := &peaks{pids: pids, base: make([]int64, len(pids)), reset: make([]bool, len(pids)),
		top: make([]int64, len(pids)), quit: make(chan struct{}), done: make(chan struct{})}
	for i, pid := range pids {
		p.reset[i] = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
		p.base[i], _ = readStatus(pid, "VmRSS:")
		p.top[i] = p.base[i]
	}
	go p.sample()
	return p
}

func (p *peaks) sample() {
	defer close(p.done)
	tick := time.NewTicker(peakInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		for i, pid := range p.pids {
			if v, err := readStatus(pid, "VmRSS:"); err == nil {
				p.top[i] = max(p.top[i], v)
			}
		}
	}
}

// stop ends the sampling and returns each process's growth in KiB.
func (p *peaks) stop() []int64 {
	close(p.quit)
	<-p.done
	growth := make([]int64, len(p.pids))
	for i, pid := range p.pids {
		top := p.top[i]
		if hwm, err := readStatus(pid, "VmHWM:"); err == nil && p.reset[i] {
			top = max(top, hwm)
		}
		growth[i] = max(top-p.base[i], 0)
	}
	return growth
}
