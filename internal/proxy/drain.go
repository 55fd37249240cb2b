package proxy

import (
	"context"
	"net/http"
	"time"

	"keyhole/internal/hop"
)

// inFlight counts the visitor HTTP requests being served (not WebSockets,
// which last as long as the visitor wants), for WaitIdle. It returns what
// to take off the count when r ends: 1, or 0 for a WebSocket.
func (s *Server) inFlight(r *http.Request) int64 {
	if hop.IsWebSocket(r) {
		return 0
	}
	s.requests.Add(1)
	return 1
}

// WaitIdle waits until no visitor HTTP request is in flight, or until ctx
// is done. After Drain it is how a single node, with no other node to send
// its clients to, lets its requests finish while it still answers: 503 on
// health checks and new links, the tunnels' answers on their links.
func (s *Server) WaitIdle(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.requests.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
