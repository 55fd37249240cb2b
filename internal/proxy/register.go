package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
	"keyhole/internal/link"
	"keyhole/limiter"
	"keyhole/messages"
)

// registerTimeout bounds the whole challenge-response exchange.
const registerTimeout = 10 * time.Second

// serveConnect upgrades a client's link, verifies its key and serves the
// link until it ends. It runs on the connection's own goroutine.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	if s.drain.Load() {
		http.Error(w, ErrDraining.Error(), http.StatusServiceUnavailable)
		return
	}
	if !s.admit(w, r) {
		return
	}
	tap := &hijackTap{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(tap, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	tap.readInBursts()
	s.wg.Add(1)
	defer s.wg.Done()
	req, label, err := s.register(ws)
	if errors.Is(err, ErrCrowdedOut) {
		s.log.Debug("registration dropped", "remote", r.RemoteAddr, "err", err)
		return // counted and closed where it was dropped
	}
	if err != nil {
		s.countRefusal(err)
		s.countVersion(err)
		s.log.Info("registration refused", "remote", r.RemoteAddr, "err", err)
		refuse(ws, err)
		return
	}
	log := s.log.With("tunnel", label, "remote", r.RemoteAddr)
	l := &clientLink{
		label:    label,
		remote:   r.RemoteAddr,
		since:    time.Now(),
		revision: revision(r),
		instance: req.Instance,
		srv:      s,
		log:      log,
		streams:  make(map[messages.ID]sink),
	}
	l.conn = link.New(ws, link.Options{
		PingInterval: s.cfg.PingInterval,
		Timeout:      s.cfg.LinkTimeout,
		Limiter:      limiter.NewMessages(s.cfg.ClientRate),
		Logger:       log,
		ReadAhead:    tap.readAhead(),
		Reader:       tap.reader(),
	})
	// The link lives on in a goroutine of its own, with a small stack:
	// this one grew verifying the signature, and idle links are many.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveLink(l)
	}()
}

// revision is the link revision a client asked for on its upgrade, at
// most the newest this proxy speaks; 1 when it asked for none.
func revision(r *http.Request) uint8 {
	n, err := strconv.Atoi(r.Header.Get(messages.RevisionHeader))
	if err != nil || n < 1 {
		return 1
	}
	return uint8(min(n, messages.Revision))
}

// register runs the challenge-response exchange on a fresh WebSocket and
// returns the verified registration.
func (s *Server) register(ws *websocket.Conn) (*messages.RegistrationRequest, string, error) {
	ws.SetReadLimit(messages.MaxFrame)
	deadline := time.Now().Add(registerTimeout)
	ws.SetWriteDeadline(deadline)
	ws.SetReadDeadline(deadline)

	ch := messages.Challenge{Domain: s.cfg.Domain}
	rand.Read(ch.Nonce[:])
	payload, err := ch.Append(nil)
	if err != nil {
		return nil, "", err
	}
	w := s.startWaiting(ws)
	data, err := challenge(ws, payload)
	if err := s.stopWaiting(w); err != nil {
		return nil, "", err
	}
	if err != nil {
		return nil, "", err
	}
	f, err := messages.Parse(data)
	if err != nil {
		return nil, "", fmt.Errorf("read registration: %w", err)
	}
	if f.Type != messages.TypeRegistrationRequest {
		return nil, "", fmt.Errorf("%w: got %v before registering", ErrProtocol, f.Type)
	}
	req, err := messages.ParseRegistrationRequest(f.Payload)
	if err != nil {
		return nil, "", fmt.Errorf("read registration: %w", err)
	}
	label, err := identity.Verify(&req, s.cfg.Domain, ch.Nonce, time.Now())
	if err != nil {
		return nil, "", err
	}
	// Checked only once the client has proved it holds the key, so the
	// answer tells nothing to someone who merely knows a label.
	if !s.allowed(label) {
		return nil, "", fmt.Errorf("%w (label %s); its operator can add the label to the allowed keys", ErrNotAllowed, label)
	}
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	blocked := s.isBlocked(ctx, label)
	cancel()
	if blocked {
		return nil, "", fmt.Errorf("%w (label %s)", ErrBlocked, label)
	}
	ws.SetReadDeadline(time.Time{})
	ws.SetWriteDeadline(time.Time{})
	return &req, label, nil
}

// challenge sends the challenge and reads the client's answer, which
// must be a binary message.
func challenge(ws *websocket.Conn, payload []byte) ([]byte, error) {
	b := link.Frame(messages.TypeChallenge, 0, messages.ID{}, payload)
	err := ws.WriteMessage(websocket.BinaryMessage, b.B)
	b.Free()
	if err != nil {
		return nil, fmt.Errorf("send challenge: %w", err)
	}
	kind, data, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("read registration: %w", err)
	}
	if kind != websocket.BinaryMessage {
		return nil, fmt.Errorf("read registration: %w: text message", messages.ErrMalformed)
	}
	return data, nil
}

// refuse tells a client why its registration failed, then closes the link.
func refuse(ws *websocket.Conn, err error) {
	defer ws.Close()
	st := messages.Status{Code: http.StatusUnauthorized, Text: "registration refused: " + err.Error()}
	switch {
	case errors.Is(err, messages.ErrMalformed), errors.Is(err, ErrProtocol):
		st.Code = http.StatusBadRequest
	case errors.Is(err, ErrNotAllowed), errors.Is(err, ErrBlocked):
		st.Code = http.StatusForbidden
	case errors.Is(err, messages.ErrVersion):
		st.Code = link.StatusVersion
	case isTimeout(err):
		st.Code = http.StatusRequestTimeout
	}
	b := link.Frame(messages.TypeError, 0, messages.ID{}, st.Append(nil))
	defer b.Free()
	ws.SetWriteDeadline(time.Now().Add(time.Second))
	if ws.WriteMessage(websocket.BinaryMessage, b.B) != nil {
		return
	}
	reason := st.Text
	if len(reason) > 120 {
		reason = reason[:120]
	}
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, reason), time.Now().Add(time.Second))
}

// serveLink adds a registered link to its tunnel, answers the client, and
// serves the link until it ends. Its own frame stays small, as the stack
// of an idle link is this frame and the reader's below it.
func (s *Server) serveLink(l *clientLink) {
	if !s.linkUp(l) {
		return
	}
	s.linkDown(l, l.conn.Run(s.ctx, l.handle))
}

// linkUp queues the registration answer, adds l to its tunnel and
// announces the route; false if the link cannot start.
func (s *Server) linkUp(l *clientLink) bool {
	// The answer is queued before the link can be routed to, so it is the
	// first frame the client reads after registering; it is written once
	// the link runs, after the route is announced, so the client prints
	// its URL only when every node can reach it.
	resp := messages.RegistrationResponse{Hostname: l.label + "." + s.cfg.Domain, URL: s.URL(l.label)}
	if l.revision >= 2 {
		resp.Revision = l.revision
		if s.cfg.MaxBody != NoCap {
			resp.MaxBody = uint64(s.cfg.MaxBody)
		}
	}
	payload, _ := resp.Append(nil)
	if !l.conn.TrySend(link.Frame(messages.TypeRegistrationResponse, 0, messages.ID{}, payload)) {
		l.conn.Close(ErrProtocol)
		return false
	}
	first, replaced := s.addLink(l)
	if replaced != nil {
		replaced.conn.Close(ErrReplaced)
	}
	if s.blockedLocally(l.label) {
		// Blocked while it registered, after the blocklist said no: the
		// block's close may have missed it.
		l.refuse(ErrBlocked)
	}
	if first {
		if err := s.cfg.Registry.Announce(s.ctx, l.label, s.cfg.Node); err != nil {
			// Same-node requests still work; the registry writes it at
			// its next renewal.
			l.log.Warn("announce route", "err", err)
		}
	}
	if s.drain.Load() {
		l.goAway(s.ctx)
	}
	s.stats.LinksAccepted.Add(1)
	s.stats.LinksActive.Add(1)
	l.log.Info("link up", "url", resp.URL)
	return true
}

// linkDown takes l out once its link has ended with err.
func (s *Server) linkDown(l *clientLink, err error) {
	s.stats.LinksActive.Add(-1)
	s.countVersion(err)
	s.unlink(l)
	l.failAll(fmt.Errorf("%w: %v", ErrTunnelGone, err))
	l.log.Info("link down", "err", err)
}

// unlink takes l out of its tunnel, so no new stream picks it, and
// withdraws the route if l was the label's last link on this node. It may
// be called more than once.
func (s *Server) unlink(l *clientLink) {
	if last := s.removeLink(l); last {
		s.withdraw(l)
	}
}

func (s *Server) withdraw(l *clientLink) {
	// The server's context may be ending: withdraw on a fresh one.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Registry.Withdraw(ctx, l.label, s.cfg.Node); err != nil {
		l.log.Warn("withdraw route", "err", err)
	}
}

// countVersion counts a link that ended on a frame of another protocol
// version; the link has answered it with an Error of status 505.
func (s *Server) countVersion(err error) {
	if errors.Is(err, messages.ErrVersion) {
		s.stats.VersionMismatches.Add(1)
	}
}

func (s *Server) allowed(label string) bool {
	return s.cfg.Allow == nil || s.cfg.Allow(label)
}

// CloseDisallowed closes the links of every key that Config.Allow no
// longer allows, after the allowed keys changed. Their clients' attempts
// to register again are refused. It returns how many links it closed.
func (s *Server) CloseDisallowed() int {
	n := 0
	for _, l := range s.allLinks() {
		if !s.allowed(l.label) {
			l.log.Info("closing link: its key is no longer allowed")
			l.refuse(fmt.Errorf("%w: taken off the allowed keys", ErrNotAllowed))
			n++
		}
	}
	return n
}

// isTimeout reports whether err is a read or write that timed out; the
// WebSocket library hides the deadline error behind one of its own.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refuse tells the client why its link ends (an Error of status 403 on
// stream 0, which the client logs), then closes the link with err.
func (l *clientLink) refuse(err error) { l.closeWith(http.StatusForbidden, err) }

// closeWith tells the client why its link ends, an Error of status code on
// stream 0, then closes the link with err.
func (l *clientLink) closeWith(code int, err error) {
	l.conn.CloseWith(messages.Status{Code: uint16(code), Text: err.Error()}, err)
}
