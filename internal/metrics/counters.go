package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Counter is one count kept elsewhere, read at each scrape.
type Counter struct {
	Name  string // without prefix or _total: "published"
	Help  string
	Value uint64
}

// Counters is a collector for a set of counts read together at each scrape
// (a snapshot of a struct of atomics): each becomes <prefix><Name>_total.
type Counters struct {
	read  func() []Counter
	descs []*prometheus.Desc
}

// NewCounters returns a collector for the counts read returns; read must
// return the same names in the same order every time.
func NewCounters(prefix string, read func() []Counter) *Counters {
	c := &Counters{read: read}
	for _, n := range read() {
		c.descs = append(c.descs, prometheus.NewDesc(prefix+n.Name+"_total", n.Help, nil, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Counters) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Counters) Collect(ch chan<- prometheus.Metric) {
	for i, n := range c.read() {
		if i < len(c.descs) {
			ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.CounterValue, float64(n.Value))
		}
	}
}
