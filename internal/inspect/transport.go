package inspect

import (
	"fmt"
	"io"
	"net/http"
)

// Transport wraps next, the tunnel's RoundTripper toward its private
// service, so that every request through it is recorded under the
// tunnel's name. Bodies are teed as they pass: each read goes on at once,
// and only the first BodyCap bytes of each body are copied aside.
// Replays of the tunnel's requests go through next again.
//
// A request's header is kept as it is, not copied, to keep the cost per
// request small: the caller must not change it once the request is sent
// (keyhole's client builds a header per request and never does). The
// answer's header is copied, since the client strips hop-by-hop fields
// from it.
func (in *Inspector) Transport(tunnel string, next http.RoundTripper) http.RoundTripper {
	t := in.tunnel(tunnel)
	in.mu.Lock()
	t.next = next
	in.mu.Unlock()
	return &transport{in: in, t: t, next: next}
}

type transport struct {
	in   *Inspector
	t    *tunnel
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := tr.roundTrip(req, 0)
	return resp, err
}

// roundTrip sends req on and returns the answer with its entry.
func (tr *transport) roundTrip(req *http.Request, replayOf uint64) (*http.Response, *entry, error) {
	in := tr.in
	e := newEntry(tr.t, req, replayOf)
	if old := in.ring.add(e); old != nil {
		e.reuse(old)
	}
	in.changed()
	out := req
	if req.Body != nil && req.Body != http.NoBody {
		out = new(http.Request)
		*out = *req // a RoundTripper must not change the caller's request
		e.reqTee = requestTee{ReadCloser: req.Body, e: e, max: in.opts.BodyCap}
		out.Body = &e.reqTee
	}
	resp, err := tr.next.RoundTrip(out)
	if err != nil {
		e.finish(err.Error())
		in.changed()
		return nil, e, err
	}
	e.respond(resp)
	in.changed()
	// A body that is none (HEAD, 204, 304) stays http.NoBody: the client
	// tells an empty answer by it. A switched protocol's body is the
	// connection itself.
	if resp.Body == nil || resp.Body == http.NoBody || resp.StatusCode == http.StatusSwitchingProtocols {
		e.finish("")
		return resp, e, nil
	}
	e.respTee = responseTee{ReadCloser: resp.Body, e: e, in: in}
	resp.Body = &e.respTee
	return resp, e, nil
}

// requestTee copies the start of a request body aside as the transport
// reads it.
type requestTee struct {
	io.ReadCloser
	e   *entry
	max int
}

func (t *requestTee) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 {
		t.e.mu.Lock()
		t.e.reqBody.add(p[:n], t.max, t.e.reqLength)
		t.e.mu.Unlock()
	}
	return n, err
}

// responseTee copies the start of a response body aside as the client
// reads it, and ends the entry at the body's end.
type responseTee struct {
	io.ReadCloser
	e  *entry
	in *Inspector
}

func (t *responseTee) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 {
		t.e.mu.Lock()
		t.e.respBody.add(p[:n], t.in.opts.BodyCap, t.e.respLength)
		t.e.mu.Unlock()
	}
	switch {
	case err == io.EOF:
		t.end("")
	case err != nil:
		t.end(err.Error())
	}
	return n, err
}

func (t *responseTee) Close() error {
	err := t.ReadCloser.Close()
	t.end("")
	return err
}

// end finishes the entry, noting an answer cut short of its length.
func (t *responseTee) end(why string) {
	e := t.e
	if why == "" {
		e.mu.Lock()
		if e.respLength >= 0 && e.respBody.size < e.respLength {
			why = fmt.Sprintf("body ended after %d of %d bytes", e.respBody.size, e.respLength)
		}
		e.mu.Unlock()
	}
	e.finish(why)
	t.in.changed()
}
