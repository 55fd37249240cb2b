package client

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"keyhole/internal/metrics"
)

// classNames label keyhole_client_requests_total: the class of the status
// the client sent the proxy, or error for a request that ended without a
// whole answer (the proxy abandoned it, or the response broke off).
var classNames = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

const classError = 5

// stats are the client's counts, kept in atomics and read at each scrape.
type stats struct {
	requests   [len(classNames)]atomic.Int64
	bytesIn    atomic.Int64 // request bodies from the proxy
	bytesOut   atomic.Int64 // response bodies to the proxy
	links      atomic.Int64 // registered links running (an old one draining counts)
	registered atomic.Int64 // registrations that succeeded
	failures   atomic.Int64 // link attempts that failed: dial, registration, or a link that ended
	canceled   atomic.Int64 // streams the proxy abandoned
}

func (c *Client) initMetrics() {
	var reg prometheus.Registerer = c.cfg.Metrics
	c.reg = prometheus.NewRegistry()
	if reg == nil {
		c.reg = metrics.NewRegistry()
		reg = c.reg
	}
	st := &c.stats
	counter := func(name, help string, n *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(n.Load()) })
	}
	reqDesc := prometheus.NewDesc("keyhole_client_requests_total", "Visitor requests answered, by the class of the status sent to the proxy; error: abandoned by the proxy or cut off.", []string{"class"}, nil)
	reg.MustRegister(
		collectorFunc{desc: reqDesc, collect: func(ch chan<- prometheus.Metric) {
			for i, name := range classNames {
				ch <- prometheus.MustNewConstMetric(reqDesc, prometheus.CounterValue, float64(st.requests[i].Load()), name)
			}
		}},
		counter("keyhole_client_request_bytes_total", "Request body bytes received from the proxy.", &st.bytesIn),
		counter("keyhole_client_response_bytes_total", "Response body bytes sent to the proxy.", &st.bytesOut),
		counter("keyhole_client_registrations_total", "Links registered with the proxy, the first one included.", &st.registered),
		counter("keyhole_client_reconnects_total", "Link attempts that failed or links that ended, each followed by a new attempt.", &st.failures),
		counter("keyhole_client_canceled_total", "Streams the proxy abandoned: its visitor left, timed out, or the response broke a rule.", &st.canceled),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyhole_client_link_up", Help: "1 while a registered link to the proxy is up, else 0."}, func() float64 {
			return float64(min(st.links.Load(), 1))
		}),
	)
}

// collectorFunc is a collector of one described family.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f.collect(ch) }

// MetricsHandler serves the client's metrics in the Prometheus format.
func (c *Client) MetricsHandler() http.Handler { return metrics.Handler(c.reg) }

// LinkUp reports whether a registered link is up.
func (c *Client) LinkUp() bool { return c.stats.links.Load() > 0 }

func classOf(status int) int { return min(max(status/100, 1), 5) - 1 }
