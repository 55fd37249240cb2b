package inspect

import (
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// summary is a request as GET /api/requests lists it.
type summary struct {
	ID           uint64    `json:"id"`
	Tunnel       string    `json:"tunnel"`
	Method       string    `json:"method"`
	Path         string    `json:"path"` // with the query
	Status       int       `json:"status"`
	DurationMS   float64   `json:"duration_ms"`
	Done         bool      `json:"done"`
	Start        time.Time `json:"start"`
	Visitor      string    `json:"visitor,omitempty"`
	RequestSize  int64     `json:"request_size"`
	ResponseSize int64     `json:"response_size"`
	Error        string    `json:"error,omitempty"`
	WebSocket    bool      `json:"websocket,omitempty"`
	MessageCount int       `json:"message_count,omitempty"`
	ReplayOf     uint64    `json:"replay_of,omitempty"`
}

// detail is one request whole, as GET /api/requests/{id} shows it.
type detail struct {
	summary
	URL             string        `json:"url"`  // toward the service
	Host            string        `json:"host"` // sent to the service
	RequestHeaders  http.Header   `json:"request_headers"`
	ResponseHeaders http.Header   `json:"response_headers"`
	RequestBody     bodyView      `json:"request_body"`
	ResponseBody    bodyView      `json:"response_body"`
	Messages        []messageView `json:"messages,omitempty"`
}

// bodyView is a captured body: its bytes as base64 and, when they are
// UTF-8, as text too.
type bodyView struct {
	Size      int64   `json:"size"`      // bytes that passed
	Truncated bool    `json:"truncated"` // more passed than the cap kept
	Base64    []byte  `json:"base64"`
	Text      *string `json:"text,omitempty"`
}

type messageView struct {
	At          time.Time `json:"at"`
	FromService bool      `json:"from_service"`
	Text        bool      `json:"text"`
	Body        bodyView  `json:"body"`
}

func viewBody(c capture) bodyView {
	v := bodyView{Size: c.size, Truncated: c.size > int64(len(c.buf)), Base64: c.buf}
	if utf8.Valid(c.buf) {
		s := string(c.buf)
		v.Text = &s
	}
	return v
}

func (e *entry) summary() summary {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.summaryLocked()
}

func (e *entry) summaryLocked() summary {
	return summary{
		ID: e.id, Tunnel: e.tunnel.name, Method: e.method, Path: e.url.RequestURI(),
		Status: e.status, DurationMS: float64(e.elapsed().Microseconds()) / 1000, Done: e.done,
		Start: e.start, Visitor: e.visitor, RequestSize: e.reqBody.size, ResponseSize: e.respBody.size,
		Error: e.err, WebSocket: e.ws != nil, MessageCount: e.ws.count(), ReplayOf: e.replayOf,
	}
}

func (e *entry) detail() detail {
	e.mu.Lock()
	d := detail{
		summary: e.summaryLocked(), URL: e.url.String(), Host: e.host,
		RequestHeaders: e.reqHeader, ResponseHeaders: e.respHeader.header(),
	}
	req, resp := e.reqBody.snapshot(), e.respBody.snapshot()
	msgs := e.ws.list()
	e.mu.Unlock()
	d.RequestBody, d.ResponseBody = viewBody(req), viewBody(resp)
	for _, m := range msgs {
		d.Messages = append(d.Messages, messageView{At: m.at, FromService: m.fromService, Text: m.text, Body: viewBody(m.body.snapshot())})
	}
	return d
}

// newestSummaries lists up to limit requests, newest first.
func (in *Inspector) newestSummaries(limit int) []summary {
	es := in.ring.newest(limit)
	out := make([]summary, len(es))
	for i, e := range es {
		out[i] = e.summary()
	}
	return out
}

type tunnelView struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

func (in *Inspector) tunnelViews() []tunnelView {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]tunnelView, 0, len(in.tunnels))
	for _, t := range in.tunnels {
		v := tunnelView{Name: t.name}
		if u := t.url.Load(); u != nil {
			v.URL = *u
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b tunnelView) int { return strings.Compare(a.Name, b.Name) })
	return out
}
