package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"keyhole/bus"
	"keyhole/internal/link"
	"keyhole/messages"
)

var errRelayDone = errors.New("relay finished")

// relay serves, on the node holding a link, one stream whose visitor is on
// another node: frames from the visitor's node go to the link, and frames
// from the client wait in a bounded inbox until the relay's goroutine
// publishes them back, in order.
type relay struct {
	s    *Server
	key  relayKey
	l    *clientLink // nil when no link for the label is here any more
	in   *link.Inbox
	ws   bool
	recv uint32 // next seq from the visitor's node; bus handler only
	// For a client of link revision 1, which neither takes nor grants
	// credit on HTTP bodies, the relay grants the visitor's node credit
	// itself: owed is what it has granted beyond what it has forwarded.
	// Bus handler only.
	owed int64

	mu          sync.Mutex // protects the two flags
	visitorDone bool       // the visitor's side sent WSTeardown
	clientDone  bool       // the client sent WSTeardown
	once        sync.Once

	// The frames of a flow-controlled stream wait here for the link: the
	// bus handler must never block, and the link's queue, which all its
	// streams share, may be full while this stream is within its credit.
	// A goroutine moves them on while there are any (pump).
	omu     sync.Mutex
	toLink  []*link.Buffer
	held    int64 // what toLink costs, against RelayQueue
	pumping bool
	broken  error // the link refused a frame: the rest are dropped
}

func (s *Server) openRelay(key relayKey, label string, ws bool) *relay {
	rl := &relay{s: s, key: key, ws: ws}
	if t := s.tunnel(label); t != nil {
		rl.l = t.pick(nil)
	}
	if rl.credited() {
		rl.in = link.NewInbox(1<<20, link.WideRelayQueue, nil)
	} else {
		rl.in = link.NewInbox(httpQueueFrames, httpQueueBytes, nil)
	}
	if rl.l == nil || rl.l.attach(key.id, rl) != nil {
		rl.l = nil
		rl.in.Fail(ErrNoTunnel)
	} else if !rl.credited() {
		rl.topUp(0)
	}
	s.remote.mu.Lock()
	s.remote.relays[key] = rl
	s.remote.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		rl.run()
	}()
	return rl
}

// fromVisitor forwards the frames of an envelope from the visitor's node
// to the link; first is the envelope's first frame, already split off.
func (rl *relay) fromVisitor(seq uint32, e envelope, first []byte) {
	if seq != rl.recv {
		rl.in.Fail(ErrLost)
		return
	}
	rl.recv++
	for frame, ok := first, true; ok; frame, ok = e.next() {
		if !rl.forward(frame) {
			return
		}
	}
}

// credited reports whether the stream's client takes part in credit:
// every WebSocket stream, and HTTP streams on links of revision 2.
func (rl *relay) credited() bool { return rl.ws || rl.l == nil || rl.l.credit() }

// creditLimit is what the relay grants at a time on behalf of a client
// without credit: far more than any body of link revision 1 needs.
const creditLimit = 1 << 31

// topUp grants the visitor's node more credit once what it forwarded of a
// body approaches what it granted.
func (rl *relay) topUp(cost int64) {
	rl.owed -= cost
	if rl.owed > creditLimit/2 {
		return
	}
	rl.owed += creditLimit
	rl.in.Deliver(messages.Frame{Type: messages.TypeCredit, ID: rl.key.id}, link.Frame(messages.TypeCredit, 0, rl.key.id, messages.AppendCredit(nil, creditLimit)))
}

// forward passes one frame to the link; false ends the envelope.
func (rl *relay) forward(frame []byte) bool {
	if rl.l == nil {
		return false
	}
	b, f, err := copyFrame(frame)
	if err != nil || f.ID != rl.key.id {
		b.Free()
		rl.in.Fail(ErrProtocol)
		return false
	}
	if !rl.credited() {
		switch f.Type {
		case messages.TypeCredit:
			b.Free() // revision 1: no credit on HTTP streams
			return true
		case messages.TypeData:
			rl.topUp(link.Cost(len(f.Payload)))
		}
	}
	if rl.credited() {
		if !rl.queue(b) {
			return false
		}
	} else if !rl.l.conn.TrySend(b) {
		// Never block the bus: without credit, a link whose queue is
		// full loses this stream.
		rl.in.Fail(link.ErrOverflow)
		return false
	}
	switch {
	case f.Type == messages.TypeError:
		rl.finish()
	case f.Type == messages.TypeWSTeardown:
		rl.mu.Lock()
		rl.visitorDone = true
		done := rl.clientDone
		rl.mu.Unlock()
		if done {
			rl.finish()
		}
	}
	return true
}

// queue queues a frame for the link, and starts the pump if it is not
// running; it never blocks. A visitor's node that sends beyond its credit
// overflows the queue and loses the stream.
func (rl *relay) queue(b *link.Buffer) bool {
	rl.omu.Lock()
	defer rl.omu.Unlock()
	if rl.broken != nil {
		b.Free()
		return false
	}
	cost := link.Cost(len(b.B) - messages.HeaderSize)
	if rl.held+cost > link.RelayQueue {
		b.Free()
		rl.s.stats.StreamOverflow.Add(1)
		rl.in.Fail(link.ErrOverflow)
		return false
	}
	rl.toLink = append(rl.toLink, b)
	rl.held += cost
	if !rl.pumping {
		rl.pumping = true
		rl.s.wg.Add(1)
		go func() {
			defer rl.s.wg.Done()
			rl.pump()
		}()
	}
	return true
}

// pump sends the queued frames to the link, waiting for room in its
// queue, until none is left. Frames it has taken no longer count against
// the stream's queue: the client may take and credit the first of them
// while it waits to pass on the last.
func (rl *relay) pump() {
	var batch []*link.Buffer
	rl.omu.Lock()
	defer rl.omu.Unlock()
	for len(rl.toLink) > 0 {
		batch, rl.toLink = rl.toLink, batch[:0]
		rl.held = 0
		rl.omu.Unlock()
		err := rl.l.conn.SendBatch(rl.s.ctx, batch...) // takes the frames, even on failure
		clear(batch)
		rl.omu.Lock()
		if err != nil {
			rl.broken = err
			link.FreeAll(rl.toLink)
			clear(rl.toLink)
			rl.toLink, rl.held = rl.toLink[:0], 0
			rl.in.Fail(err)
		}
	}
	rl.pumping = false
}

// deliver queues a frame from the client; it never blocks.
func (rl *relay) deliver(f messages.Frame, b *link.Buffer) {
	if !rl.in.Deliver(f, b) {
		rl.s.stats.StreamOverflow.Add(1)
	}
}

func (rl *relay) fail(err error) { rl.in.Fail(err) }

// run publishes the client's frames to the visitor's node until the
// stream ends.
func (rl *relay) run() {
	defer rl.finish()
	var seq uint32
	var buf []byte
	var frames [][]byte
	var held []*link.Buffer
	publish := func(frames ...[]byte) error {
		buf = appendEnvelope(buf[:0], kindToVisitor, seq, rl.s.cfg.Node, "", frames...)
		seq++
		ctx, cancel := context.WithTimeout(rl.s.ctx, streamPublishTimeout)
		defer cancel()
		return rl.s.cfg.Bus.Publish(ctx, rl.key.node, buf)
	}
	for {
		m, err := rl.in.Next(rl.s.ctx)
		if err != nil {
			if !errors.Is(err, errRelayDone) && rl.s.ctx.Err() == nil {
				st := messages.Status{Code: uint16(status(err)), Text: err.Error()}
				b := link.Frame(messages.TypeError, 0, rl.key.id, st.Append(nil))
				publish(b.B)
				b.Free()
				rl.cancelClient(err)
			}
			return
		}
		// Whatever else has arrived goes in the same message, up to about
		// maxEnvelope bytes.
		frames, held = append(frames[:0], m.B.B), append(held[:0], m.B)
		end := rl.ends(m.F)
		for size := len(m.B.B); !end && size < maxEnvelope && rl.in.Len() > 0; {
			m, err = rl.in.Next(rl.s.ctx)
			if err != nil {
				break
			}
			frames, held = append(frames, m.B.B), append(held, m.B)
			size += len(m.B.B)
			end = rl.ends(m.F)
		}
		err = publish(frames...)
		link.FreeAll(held)
		if err != nil {
			if errors.Is(err, bus.ErrNoSubscriber) {
				err = ErrTunnelGone
			}
			rl.cancelClient(err)
			return
		}
		if end {
			return
		}
	}
}

// ends reports whether a frame from the client ends the stream.
func (rl *relay) ends(f messages.Frame) bool {
	switch f.Type {
	case messages.TypeError:
		return true
	case messages.TypeHTTPResponse, messages.TypeData:
		return f.End()
	case messages.TypeWSResponse:
		h, err := messages.ParseResponseHead(f.Payload)
		return err != nil || (h.Status != http.StatusSwitchingProtocols && f.End())
	case messages.TypeWSTeardown:
		rl.mu.Lock()
		defer rl.mu.Unlock()
		rl.clientDone = true
		return rl.visitorDone
	}
	return false
}

// cancelClient tells the client to abandon the stream.
func (rl *relay) cancelClient(cause error) {
	if rl.l != nil {
		rl.s.cancelStream(rl.l, rl.key.id, cause)
	}
}

// finish removes the relay; its goroutine ends once its inbox is drained.
func (rl *relay) finish() {
	rl.once.Do(func() {
		rl.s.remote.mu.Lock()
		if rl.s.remote.relays[rl.key] == rl {
			delete(rl.s.remote.relays, rl.key)
		}
		rl.s.remote.mu.Unlock()
		if rl.l != nil {
			rl.l.detach(rl.key.id)
		}
		rl.in.Fail(errRelayDone)
	})
}
