package inspect

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// message is one recorded WebSocket message.
type message struct {
	at          time.Time
	fromService bool
	text        bool
	shared      bool // list has handed its bytes out: never write them again
	body        capture
}

// wsMessages keeps a socket's latest messages, within a count and a
// byte budget, and the message being received each way. Its entry's
// mutex protects it.
type wsMessages struct {
	kept    []message // oldest first
	bytes   int       // kept bytes of kept
	total   int       // messages seen
	partial [2]message
	open    [2]bool // partial[way] has begun
}

// piece adds a piece of n bytes of a message, of which it keeps kept
// (see wsWay.take). The message is kept at its end, forgetting the
// oldest ones while more than keep, or more than budget bytes, would be
// kept. It returns the bytes of a forgotten message that nobody was
// shown, for the caller to copy its next message into: a busy socket
// then records its messages without allocating.
func (w *wsMessages) piece(fromService, text bool, n int, kept []byte, at time.Time, end bool, keep, budget int) (spare []byte) {
	way := wayOf(fromService)
	m := &w.partial[way]
	if !w.open[way] {
		*m = message{at: at, fromService: fromService, text: text}
		w.open[way] = true
	}
	m.body.size += int64(n)
	if m.body.buf == nil {
		m.body.buf = kept
	} else {
		m.body.buf = append(m.body.buf, kept...)
	}
	if !end {
		return nil
	}
	w.open[way] = false
	w.total++
	for len(w.kept) > 0 && (len(w.kept) >= keep || w.bytes+len(m.body.buf) > budget) {
		old := &w.kept[0]
		w.bytes -= len(old.body.buf)
		if !old.shared && spare == nil {
			spare = old.body.buf[:0]
		}
		*old = message{} // let its bytes go
		w.kept = w.kept[1:]
	}
	w.kept = append(w.kept, *m)
	w.bytes += len(m.body.buf)
	*m = message{}
	return spare
}

func wayOf(fromService bool) int {
	if fromService {
		return 1
	}
	return 0
}

// wsWay is what one way of a socket's tap knows of the message it is
// receiving. Only the goroutine that reads that way touches it, so the
// copy it makes needs no lock: both ways of a busy socket tap at once,
// and would otherwise wait on each other's copies.
type wsWay struct {
	kept  int       // bytes of the message kept so far
	start time.Time // when its first piece came; zero between messages
	spare []byte    // a forgotten message's bytes to copy the next into
}

// take returns a copy of the part of p the message keeps (its first max
// bytes), and when the message began.
func (w *wsWay) take(p []byte, end bool, max int) (kept []byte, at time.Time) {
	if w.start.IsZero() {
		w.start = time.Now()
	}
	at = w.start
	if room := max - w.kept; room > 0 && len(p) > 0 {
		kept = append(w.spare[:0], p[:min(room, len(p))]...)
		w.spare = nil
		w.kept += len(kept)
	}
	if end {
		w.kept, w.start = 0, time.Time{}
	}
	return kept, at
}

func (w *wsMessages) count() int {
	if w == nil {
		return 0
	}
	return w.total
}

// list returns the kept messages, oldest first. Their bytes are the
// caller's to read unlocked from now on: they are never reused.
func (w *wsMessages) list() []message {
	if w == nil {
		return nil
	}
	for i := range w.kept {
		w.kept[i].shared = true
	}
	return append([]message(nil), w.kept...)
}

// WebSocketTap returns the hook a client calls as each WebSocket of the
// tunnel opens on the service, with its handshake. The tap it returns is
// called with every piece of every message, both ways (each way from one
// goroutine at a time), and must not keep p; done is called once the
// socket has closed, with what closed it. Each socket keeps its latest
// Messages messages, the first BodyCap bytes of each, and at most
// 2 × BodyCap bytes in all.
func (in *Inspector) WebSocketTap(tunnel string) func(req *http.Request, resp *http.Response) (tap func(fromService, text bool, p []byte, end bool), done func(error)) {
	t := in.tunnel(tunnel)
	return func(req *http.Request, resp *http.Response) (func(bool, bool, []byte, bool), func(error)) {
		e := newEntry(t, req, 0)
		e.ws = &wsMessages{}
		e.respond(resp)
		in.ring.add(e)
		in.changed()
		var ways [2]wsWay
		tap := func(fromService, text bool, p []byte, end bool) {
			way := &ways[wayOf(fromService)]
			kept, at := way.take(p, end, in.opts.BodyCap)
			e.mu.Lock()
			spare := e.ws.piece(fromService, text, len(p), kept, at, end, in.opts.Messages, 2*in.opts.BodyCap)
			e.mu.Unlock()
			if spare != nil {
				way.spare = spare
			}
			if end {
				in.changed()
			}
		}
		done := func(err error) {
			e.finish(closeReason(err))
			in.changed()
		}
		return tap, done
	}
}

// closeReason is what the entry says of a socket's end: nothing for a
// clean close.
func closeReason(err error) string {
	var ce *websocket.CloseError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway || ce.Code == websocket.CloseNoStatusReceived):
		return ""
	}
	return err.Error()
}
