package proxy

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// Health paths the apex host and OpsHandler serve.
const (
	HealthPath = "/healthz"
	ReadyPath  = "/readyz"
)

// healthRoutes adds /healthz and /readyz, for GET and HEAD, to r.
func (s *Server) healthRoutes(r chi.Router) {
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Method(m, HealthPath, http.HandlerFunc(s.serveHealth))
		r.Method(m, ReadyPath, http.HandlerFunc(s.serveReady))
	}
}

// serveHealth says whether the node is alive and taking work: 200, or 503
// while it drains. A bus that does not answer leaves it healthy, since it
// still serves its own tunnels.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.drain.Load() {
		answer(w, http.StatusServiceUnavailable, "draining")
		return
	}
	answer(w, http.StatusOK, "ok")
}

// serveReady says whether the node serves the whole cluster: 503 while it
// drains, has not yet joined its bus, or cannot authenticate the other
// nodes (a cluster secret mismatch); 200 once it has joined.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.drain.Load():
		answer(w, http.StatusServiceUnavailable, "draining")
	case !s.Joined():
		answer(w, http.StatusServiceUnavailable, "not joined: the bus does not answer yet")
	case s.Ready() != nil:
		answer(w, http.StatusServiceUnavailable, "not ready: "+s.Ready().Error())
	default:
		answer(w, http.StatusOK, "ok")
	}
}

// answer writes a one-line plain-text answer.
func answer(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
