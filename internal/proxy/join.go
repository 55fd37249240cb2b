package proxy

import (
	"time"

	"keyhole/bus"
)

// Bounds of the wait between attempts to subscribe on a bus that does not
// answer yet.
const (
	joinMinBackoff = 100 * time.Millisecond
	joinMaxBackoff = 2 * time.Second
)

// join subscribes this node on the bus. When the bus does not answer (a
// Redis that is not up yet) the node serves its own tunnels meanwhile and
// a goroutine keeps trying until the subscription holds or the server
// closes; Joined reports which.
func (s *Server) join() {
	err := s.subscribe()
	if err == nil {
		return
	}
	s.log.Warn("bus not reachable yet; serving this node's own tunnels, joining when it answers", "err", err)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		wait := joinMinBackoff
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(wait):
			}
			err := s.subscribe()
			if err == nil {
				s.log.Info("joined the cluster: the bus answers")
				return
			}
			if s.ctx.Err() != nil {
				return
			}
			wait = min(wait*2, joinMaxBackoff)
			s.log.Debug("bus not reachable yet", "err", err, "retry_in", wait)
		}
	}()
}

// subscribe makes one attempt at the node's subscription.
func (s *Server) subscribe() error {
	sub, err := s.cfg.Bus.Subscribe(s.cfg.Node, s.fromBus)
	if err != nil {
		return err
	}
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	if s.ctx.Err() != nil { // closed meanwhile: Close has not seen this one
		sub.Close()
		return bus.ErrClosed
	}
	s.sub = sub
	return nil
}

// Joined reports whether the node is subscribed on its bus, so that other
// nodes can reach its tunnels and it theirs. A single node on its
// in-memory bus has joined from the start.
func (s *Server) Joined() bool {
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	return s.sub != nil
}

// leave closes the subscription, if the node has one.
func (s *Server) leave() {
	s.joinMu.Lock()
	sub := s.sub
	s.joinMu.Unlock()
	if sub != nil {
		sub.Close()
	}
}
