package proxy

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"keyhole/internal/link"
	"keyhole/messages"
)

// tunnel is the set of this node's links for one label: replicas of one
// service that share its requests.
type tunnel struct {
	mu    sync.Mutex // protects links
	links []*clientLink
	next  atomic.Uint32
}

// pick returns a live link, round robin, skipping those in skip.
func (t *tunnel) pick(skip []*clientLink) *clientLink {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.links)
	start := int(t.next.Add(1))
	for i := 0; i < n; i++ {
		l := t.links[(start+i)%n]
		if l.conn.Err() == nil && !contains(skip, l) {
			return l
		}
	}
	return nil
}

func contains(ls []*clientLink, l *clientLink) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// addLink adds l to its tunnel. It reports whether l is the label's first
// link on this node, and returns an older link of the same client process
// that l replaces.
func (s *Server) addLink(l *clientLink) (first bool, replaced *clientLink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tunnels[l.label]
	if t == nil {
		t = &tunnel{}
		s.tunnels[l.label] = t
		first = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, old := range t.links {
		if old.instance == l.instance {
			replaced = old
			t.links[i] = l
			return first, replaced
		}
	}
	t.links = append(t.links, l)
	return first, nil
}

// removeLink takes l out of its tunnel and reports whether it was the
// label's last link on this node.
func (s *Server) removeLink(l *clientLink) (last bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tunnels[l.label]
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.links {
		if x == l {
			t.links = append(t.links[:i], t.links[i+1:]...)
			if len(t.links) == 0 {
				delete(s.tunnels, l.label)
				return true
			}
			return false
		}
	}
	return false
}

func (s *Server) tunnel(label string) *tunnel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tunnels[label]
}

func (s *Server) allLinks() []*clientLink {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ls []*clientLink
	for _, t := range s.tunnels {
		t.mu.Lock()
		ls = append(ls, t.links...)
		t.mu.Unlock()
	}
	return ls
}

// clientLink is the proxy's side of one client link.
type clientLink struct {
	label    string
	instance [messages.InstanceSize]byte
	srv      *Server
	conn     *link.Conn
	log      *slog.Logger
	revision uint8     // the link revision the client speaks: 1, or 2 with credit on HTTP bodies
	remote   string    // the client's address, for the admin API
	since    time.Time // when it registered
	requests atomic.Uint64

	mu      sync.Mutex // protects streams, gone and leaving
	streams map[messages.ID]sink
	gone    error
	leaving bool // the client is leaving: no new streams; close when none is left
}

// sink receives the frames of one stream.
type sink interface {
	// deliver takes b; it never blocks.
	deliver(f messages.Frame, b *link.Buffer)
	// fail ends the stream because its link or route went away.
	fail(err error)
}

// attach routes the frames of stream id to k. It fails if the link has
// already ended or its client is leaving it.
func (l *clientLink) attach(id messages.ID, k sink) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone != nil {
		return l.gone
	}
	if l.leaving {
		return ErrLeaving
	}
	l.streams[id] = k
	l.requests.Add(1)
	return nil
}

func (l *clientLink) detach(id messages.ID) {
	l.mu.Lock()
	delete(l.streams, id)
	closing := l.leaving && len(l.streams) == 0
	l.mu.Unlock()
	if closing {
		l.conn.Close(ErrLeaving)
	}
}

// leave answers a client's GoAway: its new link is up elsewhere. The link
// takes no new streams from now on (requests go to the client's other
// links, here or on another node) and closes once the streams open on it
// have ended. The proxy closes it rather than the client because only the
// proxy knows whether a stream it opened is still on its way.
func (l *clientLink) leave() {
	l.mu.Lock()
	if l.leaving || l.gone != nil {
		l.mu.Unlock()
		return
	}
	l.leaving = true
	empty := len(l.streams) == 0
	l.mu.Unlock()
	l.log.Info("client is leaving this link", "open_streams", !empty)
	// Out of the tunnel now; the route, which is I/O, off the read loop.
	if last := l.srv.removeLink(l); last {
		l.srv.wg.Add(1)
		go func() {
			defer l.srv.wg.Done()
			l.srv.withdraw(l)
		}()
	}
	if empty {
		l.conn.Close(ErrLeaving)
	}
}

func (l *clientLink) credit() bool { return l.revision >= 2 }

func (l *clientLink) widen() int64 { return 0 }

func (l *clientLink) send(ctx context.Context, b *link.Buffer) error {
	return l.conn.Send(ctx, b)
}

func (l *clientLink) sendBatch(ctx context.Context, bs ...*link.Buffer) error {
	return l.conn.SendBatch(ctx, bs...)
}

// failAll ends every stream of a link that has gone.
func (l *clientLink) failAll(err error) {
	l.mu.Lock()
	l.gone = err
	streams := l.streams
	l.streams = nil
	l.mu.Unlock()
	for _, k := range streams {
		k.fail(err)
	}
}

func (l *clientLink) goAway(ctx context.Context) {
	l.conn.Send(ctx, link.Frame(messages.TypeGoAway, 0, messages.ID{}, []byte("proxy is shutting down")))
}

// handle dispatches one frame from the client.
func (l *clientLink) handle(f messages.Frame, b *link.Buffer) error {
	switch f.Type {
	case messages.TypeHTTPResponse, messages.TypeData, messages.TypeWSResponse,
		messages.TypeWSMessage, messages.TypeWSTeardown, messages.TypeError, messages.TypeCredit:
		if f.ID.IsZero() {
			defer b.Free() // f.Payload lives in b
			if f.Type == messages.TypeError {
				st, _ := messages.ParseStatus(f.Payload)
				l.log.Info("client closed its link", "code", st.Code, "reason", st.Text)
				return ErrTunnelGone
			}
			l.srv.stats.ProtocolViolations.Add(1)
			return nil
		}
		l.mu.Lock()
		k := l.streams[f.ID]
		l.mu.Unlock()
		if k == nil {
			l.srv.stats.UnknownStream.Add(1)
			b.Free()
			return nil
		}
		k.deliver(f, b)
	case messages.TypeGoAway:
		b.Free()
		l.leave()
	default:
		// Frames a client may not send, and types from a later
		// version: counted and ignored, never fatal.
		l.srv.stats.ProtocolViolations.Add(1)
		b.Free()
	}
	return nil
}
