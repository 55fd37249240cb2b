package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// The proxy command's registration limits: far above what a fleet needs
// (a hundred replicas behind one address reconnecting at once, thousands
// of clients moving to this node in a rolling deploy), far below what a
// flood of fresh keys would cost.
const (
	DefaultRegisterRate        = 5    // per source address, a second
	DefaultRegisterBurst       = 100  // per source address, at once
	DefaultRegisterGlobalRate  = 500  // all addresses together, a second
	DefaultRegisterGlobalBurst = 2000 // all addresses together, at once
	// DefaultMaxPending is Config.MaxPending's default: sockets that may
	// wait to register at once, above the global burst.
	DefaultMaxPending = 4096
)

// admit checks a link's registration limits before its upgrade, so a
// refused one costs neither a socket nor a signature check. Over a limit
// it answers 429 with Retry-After and reports false.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	src := s.sourceAddr(r)
	ok, wait := s.regRL.Allow(src, time.Now())
	if ok {
		return true
	}
	s.stats.RegisterLimited.Add(1)
	s.log.Debug("registration limited", "remote", r.RemoteAddr, "source", src, "retry_after", wait)
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
	s.fail(w, r, s.cfg.Domain, ErrRegisterLimited)
	return false
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return int(max((d+time.Second-1)/time.Second, 1))
}

// startWaiting counts ws among the sockets waiting to register, from
// before its challenge is sent, crowding out the longest waiting one if
// there are too many.
func (s *Server) startWaiting(ws *websocket.Conn) *waiter {
	w, dropped := s.pending.add(ws)
	if dropped != nil {
		s.stats.RegisterDropped.Add(1)
		dropped.drop()
	}
	return w
}

// stopWaiting ends w's wait once its answer (or an error) is read. A
// socket crowded out meanwhile gets ErrCrowdedOut.
func (s *Server) stopWaiting(w *waiter) error {
	if !s.pending.done(w) {
		return fmt.Errorf("%w (%d waiting)", ErrCrowdedOut, s.cfg.MaxPending)
	}
	return nil
}
