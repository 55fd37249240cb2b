package client

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// readSimpleResponse reads the response to req when it is of the plain
// kind nearly every service sends, and already whole in br's buffer: an
// HTTP/1.1 status of 200 or more, fields on lines of their own, and a
// body of one Content-Length. It gives what http.ReadResponse gives, from
// one string for the whole head. For anything else (a head still on its
// way, a 1xx, 204 or 304, an answer to HEAD, a Transfer-Encoding, a
// Connection: close, folded or unusual lines) it returns nil having read
// nothing, for http.ReadResponse to read.
func readSimpleResponse(br *bufio.Reader, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 || end+4 > maxResponseHeader {
		return nil
	}
	head := string(buf[:end+2]) // every line with its CRLF
	status, rest, _ := cut(head)
	const proto = "HTTP/1.1 "
	if len(status) < len(proto)+3 || status[:len(proto)] != proto || len(status) > len(proto)+3 && status[len(proto)+3] != ' ' {
		return nil
	}
	code, err := strconv.Atoi(status[len(proto) : len(proto)+3])
	if err != nil || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	n := strings.Count(rest, "\n")
	h := make(http.Header, n)
	vals := make([]string, 0, n) // one backing array, sliced per name
	length := int64(-1)
	for rest != "" {
		var line string
		var ok bool
		if line, rest, ok = cut(rest); !ok {
			return nil
		}
		name, value, ok := field(line)
		if !ok {
			return nil
		}
		switch name {
		case "Transfer-Encoding", "Pragma":
			return nil // a framing, or a Cache-Control, of net/http's own making
		case "Connection":
			if httpguts.HeaderValuesContainsToken([]string{value}, "close") {
				return nil
			}
		case "Content-Length":
			if length >= 0 {
				return nil // repeated: net/http's rules
			}
			l, err := strconv.ParseUint(value, 10, 63)
			if err != nil {
				return nil
			}
			length = int64(l)
		}
		if prev, ok := h[name]; ok {
			h[name] = append(prev, value)
			continue
		}
		vals = append(vals, value)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if length < 0 {
		return nil // read to the close: net/http's rules
	}
	br.Discard(end + 4)
	resp := &http.Response{
		Status:        status[len(proto):],
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: length,
		Request:       req,
		Body:          http.NoBody,
	}
	if length > 0 {
		resp.Body = &lengthBody{br: br, left: length}
	}
	return resp
}

// cut splits s after its first line, which must end in CRLF: a bare LF
// is left to net/http's reading.
func cut(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return s, "", false
	}
	return s[:i-1], s[i+1:], true
}

// field splits a field line as net/textproto reads it: a token, a colon,
// the value trimmed of spaces and tabs, with no bytes textproto refuses.
// The name comes back in canonical form. ok is false for a line the
// quick reading leaves to net/http: an empty or invalid name, a folded
// line, a control byte in the value.
func field(line string) (name, value string, ok bool) {
	colon := strings.IndexByte(line, ':')
	if colon <= 0 {
		return "", "", false
	}
	for i := 0; i < colon; i++ {
		if !tokenByte[line[i]] {
			return "", "", false
		}
	}
	v := line[colon+1:]
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return "", "", false
		}
	}
	return textproto.CanonicalMIMEHeaderKey(line[:colon]), textproto.TrimString(v), true
}

// tokenByte marks the bytes of a field name (an RFC 9110 token).
var tokenByte = func() (t [256]bool) {
	for c := range t {
		t[c] = httpguts.IsTokenRune(rune(c))
	}
	return t
}()

// lengthBody is a response body of known length read from the
// connection's buffer. Its last bytes come with io.EOF, so the connection
// goes back to the pool as soon as the body has been read.
type lengthBody struct {
	br   *bufio.Reader
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
