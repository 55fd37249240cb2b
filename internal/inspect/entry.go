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
	url       url.URL     // toward the service; a copy, as the caller may reuse its own
	host      string      // the Host sent to the service
	visitor   string      // first address of X-Forwarded-For
	reqHeader http.Header // the request's own, not a copy; see Transport
	reqLength int64       // declared; -1 unknown
	ws        *wsMessages // a WebSocket's; nil for a request

	mu         sync.Mutex // protects all below, and ws's fields
	status     int        // 0 until the service answered
	respHeader headers
	respLength int64 // declared; -1 unknown
	reqBody    capture
	respBody   capture
	took       time.Duration // until the answer's body ended
	done       bool
	err        string

	// The bodies' tees, kept here to spare an allocation each.
	reqTee  requestTee
	respTee responseTee
}

// headers is a copy of a header, as name, value, name, value…: one
// allocation, where a cloned http.Header takes a map.
type headers []string

// flatten copies h into dst's room, or into new room if dst has too
// little.
func flatten(dst headers, h http.Header) headers {
	out := dst[:0]
	if cap(out) < 2*len(h) {
		out = make(headers, 0, 2*len(h)) // most fields have one value
	}
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k, v)
		}
	}
	return out
}

func (hs headers) header() http.Header {
	h := make(http.Header, len(hs)/2)
	for i := 0; i+1 < len(hs); i += 2 {
		h[hs[i]] = append(h[hs[i]], hs[i+1])
	}
	return h
}

// capture keeps the first max bytes of a body and counts them all.
type capture struct {
	buf  []byte
	size int64
	// shown: snapshot has handed buf out, so its bytes are never
	// written again, not even once the entry is forgotten.
	shown bool
}

// add counts p and keeps what fits under max. The first piece of a body
// of known length makes room for all of it that will be kept, in the
// room buf already has (see reuse) if that is enough.
func (c *capture) add(p []byte, max int, length int64) {
	c.size += int64(len(p))
	room := max - len(c.buf)
	if room <= 0 {
		return
	}
	if want := min(length, int64(max)); len(c.buf) == 0 && length > int64(len(p)) && int64(cap(c.buf)) < want {
		c.buf = make([]byte, 0, want)
	}
	c.buf = append(c.buf, p[:min(room, len(p))]...)
}

// snapshot returns what was kept so far. The bytes it returns are never
// written again (a capture only appends, and one shown is never
// reused), so they may be read unlocked.
func (c *capture) snapshot() capture {
	c.shown = true
	return capture{buf: c.buf[:len(c.buf):len(c.buf)], size: c.size}
}

// reuse hands e what a forgotten entry old holds that nobody else can
// see any more: the bytes of its response body, unless they were shown,
// and its copy of the response header. A busy tunnel then records its
// requests without allocating room for them each time. old must be
// finished, so that nothing adds to its body any more; its summary
// keeps its sizes.
func (e *entry) reuse(old *entry) {
	old.mu.Lock()
	if !old.done {
		old.mu.Unlock()
		return
	}
	var buf []byte
	if !old.respBody.shown {
		buf = old.respBody.buf[:0]
	}
	old.respBody.buf = nil
	hs := old.respHeader[:0]
	old.respHeader = nil
	old.mu.Unlock()
	clear(hs[:cap(hs)]) // let the old strings go
	e.mu.Lock()
	e.respBody.buf, e.respHeader = buf, hs
	e.mu.Unlock()
}

// newEntry records a request as it leaves for the service.
func newEntry(t *tunnel, req *http.Request, replayOf uint64) *entry {
	return &entry{
		tunnel:     t,
		replayOf:   replayOf,
		start:      time.Now(),
		method:     req.Method,
		url:        *req.URL,
		host:       req.Host,
		visitor:    visitorOf(req.Header),
		reqHeader:  req.Header,
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
	e.mu.Lock()
	e.respHeader = flatten(e.respHeader, resp.Header) // the client strips hop-by-hop fields from resp.Header afterwards
	e.status, e.respLength = resp.StatusCode, resp.ContentLength
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
