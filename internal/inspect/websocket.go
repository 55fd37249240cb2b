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
	body        capture
}

// wsMessages keeps a socket's latest messages, within a count and a
// byte budget, and the message being received each way. Its entry's
// mutex protects it.
type wsMessages struct {
	kept    []message // oldest first
	bytes   int       // kept bytes of kept
	total   int       // messages seen
	partial [2]*message
}

// piece adds a piece of a message; the message is kept at its end,
// forgetting the oldest ones while more than keep, or more than budget
// bytes, would be kept.
func (w *wsMessages) piece(fromService, text bool, p []byte, end bool, max, keep, budget int) {
	way := 0
	if fromService {
		way = 1
	}
	m := w.partial[way]
	if m == nil {
		m = &message{at: time.Now(), fromService: fromService, text: text}
		w.partial[way] = m
	}
	m.body.add(p, max, -1)
	if !end {
		return
	}
	w.partial[way] = nil
	w.total++
	for len(w.kept) > 0 && (len(w.kept) >= keep || w.bytes+len(m.body.buf) > budget) {
		w.bytes -= len(w.kept[0].body.buf)
		w.kept[0] = message{} // let its bytes go
		w.kept = w.kept[1:]
	}
	w.kept = append(w.kept, *m)
	w.bytes += len(m.body.buf)
}

func (w *wsMessages) count() int {
	if w == nil {
		return 0
	}
	return w.total
}

// list returns the kept messages, oldest first.
func (w *wsMessages) list() []message {
	if w == nil {
		return nil
	}
	return append([]message(nil), w.kept...)
}

// WebSocketTap returns the hook a client calls as each WebSocket of the
// tunnel opens on the service, with its handshake. The tap it returns is
// called with every piece of every message, both ways, and must not keep
// p; done is called once the socket has closed, with what closed it.
// Each socket keeps its latest Messages messages, the first BodyCap bytes
// of each, and at most 2 × BodyCap bytes in all.
func (in *Inspector) WebSocketTap(tunnel string) func(req *http.Request, resp *http.Response) (tap func(fromService, text bool, p []byte, end bool), done func(error)) {
	t := in.tunnel(tunnel)
	return func(req *http.Request, resp *http.Response) (func(bool, bool, []byte, bool), func(error)) {
		e := newEntry(t, req, 0)
		e.ws = &wsMessages{}
		e.respond(resp)
		in.ring.add(e)
		in.changed()
		tap := func(fromService, text bool, p []byte, end bool) {
			e.mu.Lock()
			e.ws.piece(fromService, text, p, end, in.opts.BodyCap, in.opts.Messages, 2*in.opts.BodyCap)
			e.mu.Unlock()
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
