package proxy

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"keyhole/limiter"
)

// RequestIDHeader carries the id of a failed request to the visitor; the
// proxy's log line for the failure has the same id.
const RequestIDHeader = "Keyhole-Request-Id"

// publicErrors are the errors whose own text a visitor may read: short,
// generic, and free of addresses and of anything a library wrote. An
// error that wraps none of them is described by its status alone.
var publicErrors = []error{
	ErrNoTunnel, ErrNotOurs, ErrTunnelGone, ErrTimeout, ErrResponseTooLarge,
	ErrRateLimited, ErrRouting, ErrDraining, ErrBadBody, ErrBodyTimeout,
	ErrLength, ErrRegisterLimited, ErrLeaving, ErrLost,
}

// meaning says in a sentence what a failure means to a visitor.
func meaning(err error, code int) string {
	var ue *upstreamError
	if !errors.As(err, &ue) { // the client's message stays in the log
		for _, pe := range publicErrors {
			if errors.Is(err, pe) {
				return pe.Error()
			}
		}
		if errors.Is(err, limiter.ErrBodyTooLarge) {
			return "request body over the size limit"
		}
	}
	switch code {
	case http.StatusBadGateway:
		return "the tunnel's private service failed or could not be reached"
	case http.StatusServiceUnavailable:
		return "the proxy cannot reach this tunnel right now; try again shortly"
	case http.StatusGatewayTimeout:
		return ErrTimeout.Error()
	}
	return "the request failed"
}

// errorPage answers a visitor with a short generic page (the status, what
// it means, the hostname and a request id) and logs the detail under the
// same id. The page never shows err itself, which may hold internal
// addresses or a library's words.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, host string, err error) {
	code := status(err)
	h := w.Header()
	id := h.Get(RequestIDHeader)
	if id == "" {
		id = rand.Text()[:16]
		h.Set(RequestIDHeader, id)
	}
	level := slog.LevelDebug // the visitor's own doing, or no tunnel
	if code >= 500 {
		level = slog.LevelInfo
	}
	s.log.Log(r.Context(), level, "request failed", "request_id", id, "host", host,
		"method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	if len(host) > 255 {
		host = host[:255]
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s\n\nkeyhole: %s.\n\nhost:       %s\nrequest id: %s\n",
		code, http.StatusText(code), meaning(err, code), host, id)
}
