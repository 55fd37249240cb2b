package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"keyhole/internal/hop"
	"keyhole/internal/link"
	"keyhole/messages"
)

// serveHTTP answers one visitor request from the private service.
func (s *session) serveHTTP(st *stream, head *messages.RequestHead, noBody bool) {
	if !s.authorize(st, head, messages.TypeHTTPResponse) {
		return
	}
	x := outcome{start: time.Now()}
	defer s.logRequest(st, head, &x)
	req, err := s.c.request(st, head, noBody)
	if err != nil {
		x.status, x.err = requestStatus(err), err
		s.sendError(st.id, x.status, "keyhole client: "+err.Error())
		return
	}
	resp, err := s.c.cfg.Transport.RoundTrip(req)
	if err != nil {
		x.err = err
		if st.ctx.Err() == nil {
			x.status = http.StatusBadGateway
			s.sendError(st.id, x.status, "keyhole client: private service failed: "+err.Error())
		}
		return
	}
	defer resp.Body.Close()
	x.service = resp.StatusCode
	x.status = resp.StatusCode
	x.out, err = s.relayResponse(st, resp)
	if err != nil {
		x.err = err
		var u unsentError
		if errors.As(err, &u) {
			x.status = http.StatusBadGateway // the head never went: the visitor gets our 502
		} else {
			x.cut = true
		}
		if st.ctx.Err() == nil {
			s.sendError(st.id, http.StatusBadGateway, "keyhole client: "+err.Error())
		}
	}
}

// request builds the request toward the private service.
func (c *Client) request(st *stream, head *messages.RequestHead, noBody bool) (*http.Request, error) {
	u, err := url.ParseRequestURI(head.URI)
	if err != nil {
		return nil, fmt.Errorf("request target %q: %w", head.URI, err)
	}
	u.Scheme, u.Host, u.User = c.target.Scheme, c.target.Host, nil
	if p := strings.TrimSuffix(c.target.Path, "/"); p != "" {
		if escapesTarget(u.EscapedPath()) {
			return nil, fmt.Errorf("%w: %q", errEscapesTarget, u.EscapedPath())
		}
		u.Path = p + u.Path
		if u.RawPath != "" {
			u.RawPath = strings.TrimSuffix(c.target.EscapedPath(), "/") + u.RawPath
		}
	}
	req, err := newRequest(st.ctx, head.Method, u, head.Header)
	if err != nil {
		return nil, err
	}
	for k, v := range c.cfg.Header {
		req.Header[k] = v
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // send none, as the visitor did
	}
	switch c.cfg.HostHeader {
	case "":
		req.Host = head.Host
	case "rewrite":
		req.Host = c.target.Host
	default:
		req.Host = c.cfg.HostHeader
	}
	req.ContentLength = head.ContentLength
	if noBody || head.ContentLength == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		req.Body = &body{st: st, length: head.ContentLength}
	}
	return req, nil
}

// newRequest is http.NewRequestWithContext for a URL already parsed,
// which it would otherwise print and parse again. The method is a token
// or empty (messages.ParseRequestHead checks). A URL whose printed form
// is not its own (an opaque one, a path not under "/", such as
// OPTIONS's "*") still takes the long way, so it goes out as it always
// has.
func newRequest(ctx context.Context, method string, u *url.URL, h http.Header) (*http.Request, error) {
	if u.Opaque != "" || u.Path != "" && u.Path[0] != '/' {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header = h
		return req, nil
	}
	if method == "" {
		method = http.MethodGet
	}
	u.Host = strings.TrimSuffix(u.Host, ":") // as NewRequest drops an empty port
	req := http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       u.Host,
	}
	return req.WithContext(ctx), nil
}

// relayResponse sends the service's response head and body to the proxy.
func (s *session) relayResponse(st *stream, resp *http.Response) (int64, error) {
	return s.relayResponseAs(st, resp, messages.TypeHTTPResponse)
}

// relayResponseAs sends a response with a head of type t (HTTPResponse,
// or WSResponse for a refused WebSocket).
func (s *session) relayResponseAs(st *stream, resp *http.Response, t messages.Type) (int64, error) {
	hop.Remove(resp.Header)
	if resp.ContentLength > s.maxBody {
		return 0, unsentError{fmt.Errorf("response of %d bytes over the proxy's cap of %d", resp.ContentLength, s.maxBody)}
	}
	rh := messages.ResponseHead{Status: resp.StatusCode, ContentLength: resp.ContentLength, Header: resp.Header}
	empty := resp.Body == http.NoBody || resp.ContentLength == 0
	var flags messages.Flags
	if empty {
		flags = messages.FlagEnd
	}
	b := link.NewBuffer()
	b.B = messages.AppendHeader(b.B, t, flags, st.id)
	var err error
	if b.B, err = messages.AppendResponseHead(b.B, &rh); err != nil {
		b.Free()
		return 0, unsentError{fmt.Errorf("response head: %w", err)}
	}
	if empty {
		return 0, st.send(b)
	}
	if n := resp.ContentLength; n > 0 && n <= messages.MaxChunk {
		// A small body of known length is here already, or nearly:
		// it goes out with its head in one write.
		c := link.Chunk()
		if _, err := io.ReadFull(resp.Body, c.Payload()[:n]); err != nil {
			c.Free()
			b.Free()
			return 0, unsentError{fmt.Errorf("read response body: %w", err)}
		}
		c.Seal(messages.TypeData, messages.FlagEnd, st.id, int(n))
		st.acquire(int(n)) // the initial window always holds one chunk
		return n, st.s.conn.SendBatch(st.ctx, b, c)
	}
	if err := st.send(b); err != nil {
		return 0, err
	}
	return relayBody(st, resp.Body, resp.ContentLength, s.maxBody)
}

// relayBody sends a body as Data frames, within the stream's credit. A
// body of known length fills whole chunks; one of unknown length (a
// stream, server-sent events) is sent as it arrives. One that passes the
// cap is cut off.
func relayBody(st *stream, r io.Reader, length, maxBody int64) (int64, error) {
	var total int64
	for {
		c := link.Chunk()
		var n int
		var err error
		if length >= 0 {
			n, err = io.ReadFull(r, c.Payload()[:min(length-total, messages.MaxChunk)])
			if err == nil && total+int64(n) == length {
				err = io.EOF
			}
		} else {
			n, err = r.Read(c.Payload())
		}
		total += int64(n)
		var flags messages.Flags
		switch {
		case err == io.EOF && (length < 0 || total == length):
			flags = messages.FlagEnd
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			c.Free()
			return total, fmt.Errorf("response body ended after %d of %d bytes", total, length)
		case err != nil:
			c.Free()
			return total, fmt.Errorf("read response body: %w", err)
		case n == 0:
			c.Free()
			continue
		}
		if total > maxBody {
			flags = 0 // the piece past the cap never ends the body
		}
		if err := st.acquire(n); err != nil {
			c.Free()
			return total, err
		}
		c.Seal(messages.TypeData, flags, st.id, n)
		if err := st.send(c); err != nil {
			return total, err
		}
		if total > maxBody {
			// The piece that passed the cap shows the proxy why the
			// stream ends; nothing more is read from the service.
			return total, fmt.Errorf("response body over the proxy's cap of %d bytes", maxBody)
		}
		if flags != 0 {
			return total, nil
		}
	}
}
