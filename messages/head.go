package messages

import (
	"encoding/binary"
	"fmt"
	"net/http"
)

// RequestHead is the payload of HTTPRequest and WSRequest: what the proxy
// forwards of a visitor's request. Header keeps every value of a repeated
// field in order; hop-by-hop fields are removed before encoding.
type RequestHead struct {
	Method        string // empty on WSRequest (always GET)
	URI           string // request target as received: path and raw query
	Host          string // the visitor's Host
	ContentLength int64  // -1 when unknown (the body is streamed until FlagEnd)
	Header        http.Header
	// Fields, when set, is encoded instead of Header, so that a sender
	// need not build a map to send a header it filters. A parsed head
	// has Header.
	Fields FieldAppender
}

// FieldAppender appends header fields to dst, each with AppendField, and
// returns dst and how many it appended, or the first error AppendField
// gave.
type FieldAppender func(dst []byte) ([]byte, int, error)

// ResponseHead is the payload of HTTPResponse and WSResponse.
type ResponseHead struct {
	Status        int
	ContentLength int64 // -1 when unknown
	Header        http.Header
}

// AppendRequestHead appends h's encoding to dst. It refuses, leaving dst
// as it was, a head the receiver would refuse: an error wraps ErrTooLarge
// for a field over its length prefix or a payload over MaxPayload, and
// ErrMalformed for an invalid method, URI, host, header field or length.
//
//	method  string8   (1-byte length), a token or empty
//	uri     string16
//	host    string16
//	length  int64
//	header  header block
func AppendRequestHead(dst []byte, h *RequestHead) ([]byte, error) {
	start := len(dst)
	if len(h.Method) > 255 {
		return dst, fmt.Errorf("%w: method of %d bytes", ErrTooLarge, len(h.Method))
	}
	if err := fits16("uri", h.URI); err != nil {
		return dst, err
	}
	if err := fits16("host", h.Host); err != nil {
		return dst, err
	}
	if err := checkRequestHead(h); err != nil {
		return dst, err
	}
	dst = append(dst, byte(len(h.Method)))
	dst = append(dst, h.Method...)
	dst = appendString16(dst, h.URI)
	dst = appendString16(dst, h.Host)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.ContentLength))
	dst, err := appendFields(dst, h.Header, h.Fields)
	if err != nil {
		return dst[:start], err
	}
	return checkPayload("request head", dst, start)
}

// ParseRequestHead decodes a RequestHead. Header names come out in
// canonical form (see http.CanonicalHeaderKey).
func ParseRequestHead(p []byte) (RequestHead, error) {
	r := newReader(p)
	var h RequestHead
	h.Method = r.take(r.u8("method length"), "method")
	h.URI = r.string16("uri")
	h.Host = r.string16("host")
	h.ContentLength = int64(r.u64("content length"))
	h.Header = r.header()
	if err := r.done("request head"); err != nil {
		return RequestHead{}, err
	}
	if err := checkRequestHead(&h); err != nil {
		return RequestHead{}, err
	}
	return h, nil
}

// checkRequestHead refuses what could split or smuggle a request on its way
// to the private service: a method that is not a token, control bytes in the
// URI or host, and a content length below -1.
func checkRequestHead(h *RequestHead) error {
	switch {
	case h.Method != "" && !validName(h.Method):
		return fmt.Errorf("%w: invalid method %.64q", ErrMalformed, h.Method)
	case !noCTL(h.URI):
		return fmt.Errorf("%w: control byte in uri %.64q", ErrMalformed, h.URI)
	case !noCTL(h.Host):
		return fmt.Errorf("%w: control byte in host %.64q", ErrMalformed, h.Host)
	}
	return checkLength(h.ContentLength)
}

func checkLength(n int64) error {
	if n < -1 {
		return fmt.Errorf("%w: content length %d", ErrMalformed, n)
	}
	return nil
}

func checkStatus(code int) error {
	if code < 100 || code > 999 {
		return fmt.Errorf("%w: status %d", ErrMalformed, code)
	}
	return nil
}

// AppendResponseHead appends h's encoding to dst. Like AppendRequestHead it
// refuses, leaving dst as it was, a head the receiver would refuse.
//
//	status  uint16, 100 to 999
//	length  int64
//	header  header block
func AppendResponseHead(dst []byte, h *ResponseHead) ([]byte, error) {
	start := len(dst)
	if err := checkStatus(h.Status); err != nil {
		return dst, err
	}
	if err := checkLength(h.ContentLength); err != nil {
		return dst, err
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Status))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.ContentLength))
	dst, err := appendFields(dst, h.Header, nil)
	if err != nil {
		return dst[:start], err
	}
	return checkPayload("response head", dst, start)
}

// ParseResponseHead decodes a ResponseHead. Header names come out in
// canonical form.
func ParseResponseHead(p []byte) (ResponseHead, error) {
	r := newReader(p)
	var h ResponseHead
	h.Status = r.u16("status")
	h.ContentLength = int64(r.u64("content length"))
	h.Header = r.header()
	if err := r.done("response head"); err != nil {
		return ResponseHead{}, err
	}
	if err := checkStatus(h.Status); err != nil {
		return ResponseHead{}, err
	}
	if err := checkLength(h.ContentLength); err != nil {
		return ResponseHead{}, err
	}
	return h, nil
}

// appendFields encodes a header block, of h's fields or, if it is not
// nil, of those fields appends: a uint16 count of fields, then each field
// as name string16 and value string16. A repeated field is one entry per
// value, in order; the order of different names is not significant (from
// a map it follows iteration). Invalid names and values are refused here,
// so a sender learns of them rather than its peer.
func appendFields(dst []byte, h http.Header, fields FieldAppender) ([]byte, error) {
	at := len(dst)
	dst = append(dst, 0, 0) // the count, once known
	n := 0
	var err error
	if fields != nil {
		dst, n, err = fields(dst)
	} else {
		for name, vs := range h {
			for _, v := range vs {
				if dst, err = AppendField(dst, name, v); err != nil {
					return dst, err
				}
			}
			n += len(vs)
		}
	}
	switch {
	case err != nil:
		return dst, err
	case n > 0xffff:
		return dst, fmt.Errorf("%w: %d header fields", ErrTooLarge, n)
	}
	binary.BigEndian.PutUint16(dst[at:], uint16(n))
	return dst, nil
}

// AppendField appends one field of a header block, or refuses, leaving
// dst as it was, one the receiver would refuse.
func AppendField(dst []byte, name, value string) ([]byte, error) {
	if err := fits16("header name", name); err != nil {
		return dst, err
	}
	if !validName(name) {
		return dst, fmt.Errorf("%w: invalid header name %.64q", ErrMalformed, name)
	}
	if err := fits16("header value", value); err != nil {
		return dst, err
	}
	if !validValue(value) {
		return dst, fmt.Errorf("%w: invalid value of header %.64q", ErrMalformed, name)
	}
	dst = appendString16(dst, name)
	return appendString16(dst, value), nil
}

// header decodes a header block. The field count is checked against the
// bytes left (each field takes at least 4) before anything is allocated.
func (r *reader) header() http.Header {
	n := r.u16("header count")
	if r.err != nil {
		return nil
	}
	if n*4 > len(r.s)-r.off {
		r.err = fmt.Errorf("%w: %d header fields in %d bytes", ErrMalformed, n, len(r.s)-r.off)
		return nil
	}
	h := make(http.Header, n)
	// One backing array for all values, sliced per name as net/textproto does.
	vals := make([]string, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.string16("header name")
		v := r.string16("header value")
		if r.err != nil {
			break
		}
		name, ok := canonicalName(name)
		if !ok {
			r.err = fmt.Errorf("%w: invalid header name %.64q", ErrMalformed, name)
			break
		}
		if !validValue(v) {
			r.err = fmt.Errorf("%w: invalid value of header %.64q", ErrMalformed, name)
			break
		}
		if prev, ok := h[name]; ok {
			h[name] = append(prev, v)
			continue
		}
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	return h
}

// validName reports whether s is an RFC 9110 field name (a token).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

// canonicalName reports whether s is a field name and returns it in
// canonical form (see http.CanonicalHeaderKey), in one pass and with no
// allocation when it is canonical already, as a peer's names mostly are.
// The name given back with false is s.
func canonicalName(s string) (string, bool) {
	if s == "" {
		return s, false
	}
	canonical, upper := true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !tokenChar[c] {
			return s, false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if !canonical {
		s = http.CanonicalHeaderKey(s)
	}
	return s, true
}

// tokenChar marks the bytes of an RFC 9110 token.
var tokenChar = func() (t [256]bool) {
	for c := range t {
		t[c] = isTokenChar(byte(c))
	}
	return t
}()

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validValue reports whether s is a field value: no CR, LF or NUL, which
// could split or end a head on the way out.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// noCTL reports whether s is free of ASCII control bytes (0x00-0x1f, 0x7f),
// as a request target and a Host must be.
func noCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
