package client

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req as req.Write does. A GET or HEAD without a
// body, nearly every request a page makes, takes a way of its own that
// writes the same head, bar the order of different field names, without
// sorting the header or formatting through fmt.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	if !bodiless(req) {
		return req.Write(bw)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !ascii(host) || strings.IndexByte(host, '%') >= 0 {
		return req.Write(bw) // punycode or a zone to take off first
	}
	if !httpguts.ValidHostHeader(host) {
		host = "" // as req.Write does: an invalid Host is sent empty
	}
	ruri := req.URL.RequestURI()
	if hasCTL(ruri) {
		return errors.New("net/http: can't write control character in Request.URL")
	}
	// The head is put together in the writer's free space, written once.
	b := bw.AvailableBuffer()
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, ruri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	ua := "Go-http-client/1.1"
	if vs, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		b = appendField(b, "User-Agent", ua)
	}
	for name, vs := range req.Header {
		switch name {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("net/http: invalid header field name %q", name)
		}
		for _, v := range vs {
			b = appendField(b, name, v)
		}
	}
	b = append(b, "\r\n"...)
	_, err := bw.Write(b)
	return err
}

// bodiless reports whether req is a GET or HEAD with no body and nothing
// else that changes how it is framed.
func bodiless(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		!req.Close && len(req.TransferEncoding) == 0 && len(req.Trailer) == 0 &&
		req.URL != nil && req.URL.Opaque == ""
}

// appendField appends one field as req.Write writes it: a line break in
// the value becomes a space, and surrounding white space goes.
func appendField(b []byte, name, v string) []byte {
	if strings.IndexByte(v, '\n') >= 0 || strings.IndexByte(v, '\r') >= 0 {
		v = strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
	}
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, textproto.TrimString(v)...)
	return append(b, "\r\n"...)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
