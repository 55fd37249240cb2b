package inspect

import (
	"net/http"
	"time"
)

// message is one recorded WebSocket message.
type message struct {
	at          time.Time
	fromService bool
	text        bool
	body        capture
}

// messageRing keeps a socket's latest messages, and the one being
// received each way.
type messageRing struct {
	kept    []message // circular once full
	next    int       // slot of the next message once full
	total   int       // messages seen
	partial [2]*message
}

func (r *messageRing) piece(fromService, text bool, p []byte, end bool, max, keep int) {
	way := 0
	if fromService {
		way = 1
	}
	m := r.partial[way]
	if m == nil {
		m = &message{at: time.Now(), fromService: fromService, text: text}
		r.partial[way] = m
	}
	m.body.add(p, max)
	if !end {
		return
	}
	r.partial[way] = nil
	r.total++
	if len(r.kept) < keep {
		r.kept = append(r.kept, *m)
		return
	}
	r.kept[r.next] = *m
	r.next = (r.next + 1) % keep
}

// list returns the kept messages, oldest first.
func (r *messageRing) list() []message {
	out := make([]message, 0, len(r.kept))
	out = append(out, r.kept[r.next:]...)
	return append(out, r.kept[:r.next]...)
}

// WebSocketTap returns the hook a client calls as each WebSocket of the
// tunnel opens on the service, with its handshake. The tap it returns is
// called with every piece of every message, both ways, and must not keep
// p; done is called once the socket has closed, with what closed it.
func (in *Inspector) WebSocketTap(tunnel string) func(req *http.Request, resp *http.Response) (tap func(fromService, text bool, p []byte, end bool), done func(error)) {
	t := in.tunnel(tunnel)
	return func(req *http.Request, resp *http.Response) (func(bool, bool, []byte, bool), func(error)) {
		e := newEntry(t, req, 0)
		e.websocket = true
		e.respond(resp)
		in.ring.add(e)
		in.changed()
		tap := func(fromService, text bool, p []byte, end bool) {
			e.mu.Lock()
			e.msgs.piece(fromService, text, p, end, in.opts.BodyCap, in.opts.Messages)
			e.mu.Unlock()
			if end {
				in.changed()
			}
		}
		done := func(err error) {
			why := ""
			if err != nil {
				why = err.Error()
			}
			e.finish(why)
			in.changed()
		}
		return tap, done
	}
}
