package inspect

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Edits change a request before it is replayed; a field left out keeps
// the recorded value.
type Edits struct {
	Method *string `json:"method,omitempty"`
	// Path is the path and query sent to the service, as listed.
	Path *string `json:"path,omitempty"`
	// Headers replace the recorded headers whole; Host among them sets
	// the Host sent.
	Headers    http.Header `json:"headers,omitempty"`
	Body       *string     `json:"body,omitempty"`        // as text
	BodyBase64 *string     `json:"body_base64,omitempty"` // as bytes; wins over Body
}

// Errors a replay can end with, told apart by the API.
var (
	errUnknown     = errors.New("no such request: unknown, or forgotten as newer ones came")
	errNoTransport = errors.New("the tunnel of this request has no transport to replay it through")
	errBodyPartial = errors.New("the recorded request body is incomplete (over the capture cap, or not read whole by the service), so it cannot be sent again as it was; send the body with the edits")
	errService     = errors.New("the service failed")
	errWebSocket   = errors.New("a websocket cannot be replayed")
	errBadEdit     = errors.New("bad edit")
)

// Replay sends request id to its tunnel's service again, with edits
// applied (nil: as it was), through the tunnel's RoundTripper, and waits
// for the whole answer, read up to the capture cap. The replay is recorded
// as a new request, which it returns.
func (in *Inspector) Replay(ctx context.Context, id uint64, edits *Edits) (*entry, error) {
	e := in.ring.get(id)
	if e == nil {
		return nil, errUnknown
	}
	if e.ws != nil {
		return nil, errWebSocket
	}
	in.mu.Lock()
	next := e.tunnel.next
	in.mu.Unlock()
	if next == nil {
		return nil, errNoTransport
	}
	ctx, cancel := context.WithTimeout(ctx, in.opts.ReplayTimeout)
	defer cancel()
	req, err := e.replayRequest(ctx, edits)
	if err != nil {
		return nil, err
	}
	tr := &transport{in: in, t: e.tunnel, next: next}
	resp, r, err := tr.roundTrip(req, id)
	if err != nil {
		return r, fmt.Errorf("%w: %w", errService, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, int64(in.opts.BodyCap)))
	resp.Body.Close()
	return r, nil
}

// replayRequest rebuilds the recorded request, with edits applied.
func (e *entry) replayRequest(ctx context.Context, edits *Edits) (*http.Request, error) {
	if edits == nil {
		edits = &Edits{}
	}
	method := e.method
	if edits.Method != nil {
		method = strings.TrimSpace(*edits.Method)
	}
	u := e.url
	if edits.Path != nil {
		ref, err := url.ParseRequestURI(*edits.Path)
		if err != nil || ref.Host != "" || !strings.HasPrefix(*edits.Path, "/") {
			return nil, fmt.Errorf("%w: path %q: want a path from /, with its query", errBadEdit, *edits.Path)
		}
		u.Path, u.RawPath, u.RawQuery = ref.Path, ref.RawPath, ref.RawQuery
	}
	body, err := e.replayBody(edits)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadEdit, err)
	}
	req.Header = e.reqHeader.Clone()
	if edits.Headers != nil {
		req.Header = edits.Headers.Clone()
	}
	req.Host = e.host
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	req.Header.Del("Host")
	req.Header.Del("Content-Length") // set from the body
	if len(body) == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	return req, nil
}

func (e *entry) replayBody(edits *Edits) ([]byte, error) {
	switch {
	case edits.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*edits.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("%w: body_base64: %w", errBadEdit, err)
		}
		return b, nil
	case edits.Body != nil:
		return []byte(*edits.Body), nil
	}
	e.mu.Lock()
	c := e.reqBody.snapshot()
	e.mu.Unlock()
	if c.size > int64(len(c.buf)) || e.reqLength > c.size {
		return nil, errBodyPartial
	}
	return c.buf, nil
}
