package proxy

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"keyhole/bus"
	"keyhole/internal/metrics"
	"keyhole/registry"
)

// routes and classes label the request duration histogram: where a
// request went, and how it ended.
var (
	routeNames = [...]string{routeNone: "none", routeLocal: "local", routeCross: "cross_node"}
	classNames = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}
)

const (
	routeNone  = iota // answered before reaching a tunnel: 404, 429, 413
	routeLocal        // a link on this node
	routeCross        // a link on another node, through the bus
)

// classError is a request that ended without a whole answer: cut off
// after its head, or left by its visitor.
const classError = 5

// durationBuckets reach past the default 30 s request timeout.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// promMetrics are the proxy's Prometheus series beside Stats. Every
// series of a vector is created up front: the hot path only observes.
type promMetrics struct {
	reg      *prometheus.Registry
	duration [len(routeNames)][len(classNames)]prometheus.Observer
	refused  map[string]prometheus.Counter // by refusalReason
}

func (s *Server) initMetrics() {
	m := &s.metrics
	m.reg = metrics.NewRegistry()
	m.reg.MustRegister(s.stats.collectors()...)
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "keyhole_proxy_request_duration_seconds",
		Help:    "Visitor requests from their head to their last byte (WebSockets: to their close), by where they went and how they ended.",
		Buckets: durationBuckets,
	}, []string{"route", "class"})
	for i, route := range routeNames {
		for j, class := range classNames {
			m.duration[i][j] = hist.WithLabelValues(route, class)
		}
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhole_proxy_registrations_refused_total",
		Help: "Client registrations refused after the link's upgrade, by reason.",
	}, []string{"reason"})
	m.refused = make(map[string]prometheus.Counter, len(refusalReasons))
	for _, r := range refusalReasons {
		m.refused[r] = refused.WithLabelValues(r)
	}
	m.reg.MustRegister(hist, refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keyhole_proxy_tunnels",
		Help: "Hostnames with at least one client link on this node.",
	}, func() float64 { return float64(s.tunnelCount()) }))
	if c, ok := s.cfg.Bus.(bus.Counted); ok {
		m.reg.MustRegister(metrics.NewCounters("keyhole_bus_", func() []metrics.Counter { return busCounters(c) }))
	}
	if c, ok := s.cfg.Registry.(registry.Counted); ok {
		m.reg.MustRegister(metrics.NewCounters("keyhole_registry_", func() []metrics.Counter { return registryCounters(c) }))
	}
}

func busCounters(c bus.Counted) []metrics.Counter {
	var out []metrics.Counter
	for _, n := range c.Counters() {
		out = append(out, metrics.Counter{Name: n.Name, Help: n.Help, Value: n.Value})
	}
	return out
}

func registryCounters(c registry.Counted) []metrics.Counter {
	var out []metrics.Counter
	for _, n := range c.Counters() {
		out = append(out, metrics.Counter{Name: n.Name, Help: n.Help, Value: n.Value})
	}
	return out
}

// observe records a finished visitor request in the histogram.
func (m *promMetrics) observe(route uint8, class int, d time.Duration) {
	m.duration[route][class].Observe(d.Seconds())
}

// classOf is a status's class label: 1xx (a WebSocket's 101) to 5xx.
func classOf(status int) int {
	return min(max(status/100, 1), 5) - 1
}

func (s *Server) countRefusal(err error) {
	s.stats.LinksRefused.Add(1)
	s.metrics.refused[refusalReason(err)].Inc()
}

func (s *Server) tunnelCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tunnels)
}

// MetricsHandler serves the proxy's metrics in the Prometheus format.
func (s *Server) MetricsHandler() http.Handler { return metrics.Handler(s.metrics.reg) }

// Registry is the proxy's Prometheus registry, for more collectors.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }
