package inspect

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// entry is one recorded request, or one WebSocket.
type entry struct {
	// Set before the entry is added to the ring, then read-only.
	id        uint64
	tunnel    *tunnel
	replayOf  uint64 // the entry this one replays; 0: a visitor's request
	start     time.Time
	method    string
	uri       string   // path and query, as sent to the service
	url       *url.URL // the whole URL toward the service, for replays
	host      string   // the Host sent to the service
	visitor   string   // first address of X-Forwarded-For
	reqHeader http.Header
	reqLength int64 // declared; -1 unknown
	websocket bool

	mu         sync.Mutex // protects all below
	status     int        // 0 until the service answered
	respHeader http.Header
	respLength int64 // declared; -1 unknown
	reqBody    capture
	respBody   capture
	took       time.Duration // until the answer's body ended
	done       bool
	err        string
	msgs       messageRing // a WebSocket's
}

// capture keeps the first max bytes of a body and counts them all.
type capture struct {
	buf  []byte
	size int64
}

func (c *capture) add(p []byte, max int) {
	c.size += int64(len(p))
	if room := max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
}

// snapshot returns what was kept so far. The bytes it returns are never
// written again (a capture only appends), so they may be read unlocked.
func (c *capture) snapshot() capture {
	return capture{buf: c.buf[:len(c.buf):len(c.buf)], size: c.size}
}

// newEntry records a request as it leaves for the service.
func newEntry(t *tunnel, req *http.Request, replayOf uint64) *entry {
	return &entry{
		tunnel:     t,
		replayOf:   replayOf,
		start:      time.Now(),
		method:     req.Method,
		uri:        req.URL.RequestURI(),
		url:        req.URL,
		host:       req.Host,
		visitor:    visitorOf(req.Header),
		reqHeader:  req.Header.Clone(),
		reqLength:  req.ContentLength,
		respLength: -1,
	}
}

// visitorOf is the visitor's address: the first of X-Forwarded-For, which
// the proxy set or, behind trusted fronts, extended.
func visitorOf(h http.Header) string {
	v := h["X-Forwarded-For"]
	if len(v) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(v[0], ",")
	return strings.TrimSpace(first)
}

// respond records the head of the service's answer.
func (e *entry) respond(resp *http.Response) {
	h := resp.Header.Clone() // the client strips hop-by-hop fields from resp.Header afterwards
	e.mu.Lock()
	e.status, e.respHeader, e.respLength = resp.StatusCode, h, resp.ContentLength
	e.mu.Unlock()
}

// finish records the end of the exchange, once.
func (e *entry) finish(err string) {
	now := time.Now()
	e.mu.Lock()
	if !e.done {
		e.done, e.took, e.err = true, now.Sub(e.start), err
	}
	e.mu.Unlock()
}

// elapsed is the exchange's duration, so far if it goes on.
func (e *entry) elapsed() time.Duration {
	if e.done {
		return e.took
	}
	return time.Since(e.start)
}
