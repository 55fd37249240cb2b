package h1

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of a fast-path request. It frames
// the answer as net/http's server would: a Content-Length the handler
// set, or one it computes when the handler ends having written less than
// holdMax, or else chunked; no body for HEAD, 1xx, 204 and 304; Date
// added and Content-Type sniffed where the handler left the field out.
type response struct {
	c   *conn
	req *http.Request

	header      http.Header
	status      int   // 0 until WriteHeader
	length      int64 // the declared Content-Length, -1 if none
	written     int64 // body bytes the handler wrote
	hold        []byte
	headerOut   bool // the head is in the writer
	chunked     bool
	closeAfter  bool
	handlerDone bool
	err         error // a write failed: the connection is done
	keys        []string
	scratch     [64]byte
}

// holdMax is how much body a response holds back before its head goes
// out, so that a short answer gets a Content-Length rather than chunks,
// as net/http's does.
const holdMax = 2048

func (w *response) reset(c *conn, req *http.Request) {
	hold, keys, header := w.hold[:0], w.keys[:0], w.header
	if header == nil {
		header = make(http.Header, 8)
	}
	clear(header)
	*w = response{c: c, req: req, length: -1, hold: hold, keys: keys, header: header}
	w.closeAfter = req.Close
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.status != 0 {
		w.c.s.logf("http: superfluous response.WriteHeader call")
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational answer goes out at once, with the fields
		// set so far, which stay for the final answer (RFC 8297).
		w.writeStatusLine(code)
		w.writeFields(nil)
		w.c.bw.WriteString("\r\n")
		w.setErr(w.c.bw.Flush())
		return
	}
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.length = v
		} else {
			w.c.s.logf("http: invalid Content-Length of %q", cl)
			w.header.Del("Content-Length")
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headerOut {
		if len(w.hold)+len(p) <= holdMax {
			w.hold = append(w.hold, p...)
			return len(p), nil
		}
		w.writeHead(p)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// FlushError sends the head, if it has not gone, and what was written.
func (w *response) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerOut {
		w.writeHead(nil)
	}
	if w.err == nil {
		w.setErr(w.c.bw.Flush())
	}
	return w.err
}

func (w *response) Flush() { w.FlushError() }

// SetWriteDeadline and SetReadDeadline let http.ResponseController set
// the connection's deadlines.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.setWriteDeadline(t) }

func (w *response) SetReadDeadline(t time.Time) error { return w.c.setReadDeadline(t) }

// EnableFullDuplex has nothing to do: a fast-path request has no body.
func (w *response) EnableFullDuplex() error { return nil }

// finish ends the response when the handler has returned.
func (w *response) finish() error {
	w.handlerDone = true
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerOut {
		w.writeHead(nil)
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.length >= 0 && w.written != w.length && w.req.Method != http.MethodHead && bodyAllowed(w.status) {
		w.closeAfter = true // the body is short: nothing else may follow it
	}
	if w.err == nil {
		w.setErr(w.c.bw.Flush())
	}
	w.hold = w.hold[:0]
	return w.err
}

// writeHead puts the status line and the fields into the writer, with
// the framing chosen, then what the handler wrote so far. next is the
// write that does not fit beside what is held, if one does not: the
// Content-Type is sniffed from the body's start, held or not.
func (w *response) writeHead(next []byte) {
	w.headerOut = true
	h := w.header
	isHEAD := w.req.Method == http.MethodHead
	te := first(h["Transfer-Encoding"])
	hasTE := te != ""
	var clen, ctype, date, connection, encoding string
	if w.handlerDone && !hasTE && bodyAllowed(w.status) && w.length < 0 && (!isHEAD || len(w.hold) > 0) {
		w.length = int64(len(w.hold))
		clen = strconv.Itoa(len(w.hold))
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	if w.c.s.closing.Load() {
		w.closeAfter = true
	}
	if bodyAllowed(w.status) {
		if _, ok := h["Content-Type"]; !ok && first(h["Content-Encoding"]) == "" && !hasTE && len(w.hold)+len(next) > 0 {
			ctype = http.DetectContentType(sniffed(w.hold, next))
		}
	} else {
		for _, k := range suppressed(w.status) {
			delete(h, k)
		}
	}
	if _, ok := h["Date"]; !ok {
		date = string(time.Now().UTC().AppendFormat(w.scratch[:0], http.TimeFormat))
	}
	hasCL := w.length >= 0
	if hasCL && hasTE && te != "identity" {
		// The field goes; the length still bounds the body (net/http's
		// rule), so writing past it fails, and a short body closes.
		w.c.s.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.length)
		delete(h, "Content-Length")
		hasCL = false
	}
	switch {
	case isHEAD || !bodyAllowed(w.status):
		delete(h, "Transfer-Encoding")
	case hasCL:
		delete(h, "Transfer-Encoding")
	case te == "identity":
		w.closeAfter = true
		delete(h, "Transfer-Encoding")
	default:
		w.chunked = true
		encoding = "chunked"
		delete(h, "Transfer-Encoding")
	}
	if w.closeAfter && !httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		delete(h, "Connection")
		connection = "close"
	}
	w.writeStatusLine(w.status)
	w.writeFields(h)
	bw := w.c.bw
	for _, f := range [...][2]string{{"Date", date}, {"Content-Length", clen}, {"Content-Type", ctype}, {"Connection", connection}, {"Transfer-Encoding", encoding}} {
		if f[1] != "" {
			bw.WriteString(f[0])
			bw.WriteString(": ")
			bw.WriteString(f[1])
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if len(w.hold) > 0 {
		hold := w.hold
		w.hold = w.hold[:0]
		w.writeBody(hold)
	}
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	if text := http.StatusText(code); text != "" {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
		bw.WriteByte(' ')
		bw.WriteString(text)
	} else {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
		bw.WriteString(" status code ")
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// writeFields writes the handler's fields (h, or the current ones for an
// informational answer) in the order of their names, dropping invalid
// names and turning line breaks in values into spaces, as net/http does.
func (w *response) writeFields(h http.Header) {
	if h == nil {
		h = w.header
	}
	keys := w.keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.keys = keys
	bw := w.c.bw
	informational := w.status == 0
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		if informational && (k == "Content-Length" || k == "Transfer-Encoding") {
			continue
		}
		for _, v := range h[k] {
			if lineBreak(v) {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
}

func (w *response) writeBody(p []byte) {
	if w.err != nil || len(p) == 0 || w.req.Method == http.MethodHead {
		return
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	if _, err := bw.Write(p); err != nil {
		w.setErr(err)
		return
	}
	if w.chunked {
		bw.WriteString("\r\n")
	}
}

func (w *response) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

// sniffed returns the body's first bytes, as many as sniffing reads,
// from what is held and the write after it.
func sniffed(hold, next []byte) []byte {
	const sniffLen = 512
	if len(hold) >= sniffLen || len(next) == 0 {
		return hold
	}
	if len(hold) == 0 {
		return next
	}
	b := make([]byte, 0, sniffLen)
	b = append(b, hold...)
	return append(b, next[:min(len(next), sniffLen-len(hold))]...)
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == 204 || status == 304)
}

// suppressed lists the fields a response without a body must not carry.
func suppressed(status int) []string {
	if status == http.StatusNotModified {
		return []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	}
	return []string{"Content-Length", "Transfer-Encoding"}
}

// first is a field's first value, as http.Header.Get gives it for a
// canonical name.
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// lineBreak reports whether v holds a CR or LF.
func lineBreak(v string) bool {
	return strings.IndexByte(v, '\n') >= 0 || strings.IndexByte(v, '\r') >= 0
}
