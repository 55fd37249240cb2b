package proxy

import "keyhole/bus"

// Ready returns nil when the node can take its part in the cluster, or an
// error saying why not: a cluster secret that differs from the other
// nodes', seen by the bus's heartbeats. /readyz answers 503 with it.
func (s *Server) Ready() error {
	if c, ok := s.cfg.Bus.(bus.Checked); ok {
		return c.Ready()
	}
	return nil
}
