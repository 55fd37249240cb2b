package cli

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"keyhole/internal/metrics"
)

// ServeOps serves metrics on /metrics and /_keyhole/metrics, and health
// on /healthz, on addr (for --metrics-listen) until the returned function
// is called.
func ServeOps(addr string, metricsHandler http.Handler, health http.HandlerFunc, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, metricsHandler)
	mux.Handle("GET "+metrics.AliasPath, metricsHandler)
	mux.HandleFunc("GET /healthz", health)
	return Serve(ln, mux, log), nil
}

// Serve serves h on ln until the returned function is called.
func Serve(ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	log.Info("serving health and metrics", "addr", ln.Addr().String())
	return func() {
		hs.Close()
		<-done
	}
}
