// Package metrics holds what keyhole's proxy and client share for
// Prometheus: a registry with the Go, process and build-info collectors,
// the handler that serves it, and collectors that read counters kept in
// atomics, so hot paths pay an atomic add and nothing more.
package metrics

import (
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths the metrics are served on: the standard one, and the one keyhole
// has served them on since its first release.
const (
	Path      = "/metrics"
	AliasPath = "/_keyhole/metrics"
)

// NewRegistry returns a registry holding the Go and process collectors and
// keyhole_build_info.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	return reg
}

// Handler serves reg in the Prometheus text format (or OpenMetrics, when
// the scraper asks for it).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// Version is the module version the binary was built from, "(devel)" for
// a build from a working tree.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func buildInfo() prometheus.Collector {
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "keyhole_build_info",
		Help:        "Always 1; the labels say which keyhole build is running.",
		ConstLabels: prometheus.Labels{"version": Version(), "goversion": goVersion},
	})
	g.Set(1)
	return g
}
