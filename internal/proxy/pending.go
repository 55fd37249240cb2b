package proxy

import (
	"container/list"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// pending bounds the sockets that were sent a challenge and have not yet
// answered it. Past the bound, the socket that has waited longest is
// dropped: a client answers within a round trip, so the oldest waiter is
// the likeliest to be one that never will.
type pending struct {
	max int
	mu  sync.Mutex // protects order and every waiter's elem
	// order holds *waiter, oldest first.
	order list.List
}

// waiter is one socket waiting to register.
type waiter struct {
	ws   *websocket.Conn
	elem *list.Element // nil once done or dropped
}

// add records ws as waiting and returns its waiter, and the waiter it
// crowded out, if any, which the caller must drop.
func (p *pending) add(ws *websocket.Conn) (w, dropped *waiter) {
	w = &waiter{ws: ws}
	p.mu.Lock()
	defer p.mu.Unlock()
	w.elem = p.order.PushBack(w)
	if p.order.Len() <= p.max {
		return w, nil
	}
	dropped = p.order.Remove(p.order.Front()).(*waiter)
	dropped.elem = nil
	return w, dropped
}

// done ends w's wait. It reports false if w had been dropped meanwhile.
func (p *pending) done(w *waiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.elem == nil {
		return false
	}
	p.order.Remove(w.elem)
	w.elem = nil
	return true
}

// drop closes a crowded-out waiter's socket, telling it to try again
// later (1013), which ends its pending read.
func (w *waiter) drop() {
	msg := websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too many links waiting to register")
	w.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(100*time.Millisecond))
	w.ws.Close()
}
