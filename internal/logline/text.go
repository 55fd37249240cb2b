// Package logline writes keyhole's log lines: a text handler that writes
// what slog.TextHandler writes, byte for byte, at a fraction of its cost
// for the lines a busy tunnel writes most, and Log, which hands such a
// line to it without building a slog.Record.
package logline

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// textHandler writes what slog.TextHandler writes, byte for byte, at a
// fraction of its cost for the lines a busy tunnel writes most: one per
// request, made of strings, numbers, booleans and durations. A record
// with anything else in it (a group, an error, a time, a LogValuer, an
// empty key) goes to the standard handler, which formats it whole.
type textHandler struct {
	slow  slog.Handler // the standard handler, with the same attributes and writer
	level slog.Leveler
	w     *lockedWriter
	pre   []byte // the WithAttrs attributes, formatted: " key=value" each
	fast  bool   // false once WithAttrs was given an attribute only slow formats
}

// lockedWriter serializes writes, so the lines of both handlers reach
// the writer whole and one at a time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// NewTextHandler returns a handler writing slog.TextHandler's lines to w.
func NewTextHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	lw := &lockedWriter{w: w}
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	return &textHandler{slow: slog.NewTextHandler(lw, opts), level: level, w: lw, fast: true}
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h *textHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.fast {
		attrs := make([]slog.Attr, 0, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool {
			attrs = append(attrs, a)
			return true
		})
		if done, err := h.fastLine(r.Time, r.Level, r.Message, attrs); done {
			return err
		}
	}
	return h.slow.Handle(ctx, r)
}

// handleAttrs is Handle for a line given as its parts, with no Record
// to build.
func (h *textHandler) handleAttrs(t time.Time, level slog.Level, msg string, attrs []slog.Attr) error {
	if done, err := h.fastLine(t, level, msg, attrs); done {
		return err
	}
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(attrs...)
	return h.slow.Handle(context.Background(), r)
}

// fastLine writes the line when this handler formats every part of it,
// and reports whether it did.
func (h *textHandler) fastLine(t time.Time, level slog.Level, msg string, attrs []slog.Attr) (bool, error) {
	if !h.fast {
		return false, nil
	}
	bp := linePool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 16<<10 {
			linePool.Put(bp)
		}
	}()
	b := (*bp)[:0]
	if !t.IsZero() {
		b = append(b, "time="...)
		b = appendStamp(b, t.Round(0))
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = appendText(b, level.String())
	b = append(b, " msg="...)
	b = appendText(b, msg)
	b = append(b, h.pre...)
	ok := true
	for _, a := range attrs {
		if b, ok = appendAttr(b, a); !ok {
			break
		}
	}
	*bp = b
	if !ok {
		return false, nil
	}
	*bp = append(b, '\n')
	_, err := h.w.Write(*bp)
	return true, err
}

// Log writes a line of attrs at level through l: straight to the text
// handler when it is l's, skipping the slog.Record and its look-up of the
// caller (which no handler of keyhole's prints), and through l otherwise.
func Log(l *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	h, ok := l.Handler().(*textHandler)
	if !ok {
		l.LogAttrs(context.Background(), level, msg, attrs...)
		return
	}
	if h.Enabled(context.Background(), level) {
		_ = h.handleAttrs(time.Now(), level, msg, attrs)
	}
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	n := *h
	n.slow = h.slow.WithAttrs(as)
	n.pre = append([]byte(nil), h.pre...)
	for _, a := range as {
		if !n.fast {
			break
		}
		n.pre, n.fast = appendAttr(n.pre, a)
	}
	return &n
}

// WithGroup hands over to the standard handler: group prefixes are for
// the rare line, not the request log.
func (h *textHandler) WithGroup(name string) slog.Handler {
	return h.slow.WithGroup(name)
}

// appendAttr appends " key=value" as slog.TextHandler writes it, and
// reports false when a is not an attribute this handler formats itself.
func appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	v := a.Value
	if a.Key == "" {
		// Only the empty Attr is elided; any other without a key is left
		// to the standard handler.
		return b, v.Kind() == slog.KindAny && v.Any() == nil
	}
	switch v.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration:
	default:
		return b, false
	}
	b = append(b, ' ')
	b = appendText(b, a.Key)
	b = append(b, '=')
	switch v.Kind() {
	case slog.KindString:
		b = appendText(b, v.String())
	case slog.KindInt64:
		b = strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		b = strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		b = strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		b = strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		b = append(b, v.Duration().String()...)
	}
	return b, true
}

// appendText appends s, quoted when slog.TextHandler would quote it.
func appendText(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuoting is slog.TextHandler's rule: empty, or holding a space,
// '=', a quote, a control character, invalid UTF-8, or a rune beyond
// ASCII that is a space or unprintable. ASCII, nearly every byte of a
// request line, takes one table look-up a byte.
func needsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	i := 0
	for ; i+8 <= len(s); i += 8 {
		// Eight bytes at a time: past ASCII, or holding a byte below '!'
		// (a space or control), '=' or '"', they take the byte loop.
		x := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
		if x&hi != 0 || below(x, '!') || hasByte(x, '=') || hasByte(x, '"') {
			break
		}
	}
	for ; i < len(s); i++ {
		switch asciiClass[s[i]] {
		case asciiSafe:
		case asciiQuote:
			return true
		default:
			return needsQuotingUTF8(s[i:])
		}
	}
	return false
}

const (
	lo = 0x0101010101010101
	hi = 0x8080808080808080
)

// below reports whether a word of ASCII bytes holds one less than c.
func below(x uint64, c byte) bool { return (x-lo*uint64(c))&^x&hi != 0 }

// hasByte reports whether a word of ASCII bytes holds c.
func hasByte(x uint64, c byte) bool {
	y := x ^ lo*uint64(c)
	return (y-lo)&^y&hi != 0
}

// needsQuotingUTF8 is needsQuoting from the first byte beyond ASCII on.
func needsQuotingUTF8(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiClass[c] == asciiQuote {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

const (
	asciiSafe  = iota // printed as it is
	asciiQuote        // makes the value quoted
	asciiNot          // not ASCII: the rune decides
)

// asciiClass classes every byte for needsQuoting.
var asciiClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = asciiNot
		case c != '\\' && (c == ' ' || c == '=' || c == '"' || c < 0x20):
			t[c] = asciiQuote
		}
	}
	return t
}()

// stamp is the text of one millisecond in one location, which the lines
// of a busy log share.
type stamp struct {
	ms  int64
	loc *time.Location
	b   []byte
}

var lastStamp atomic.Pointer[stamp]

// appendStamp is appendRFC3339Millis that formats each millisecond once.
func appendStamp(b []byte, t time.Time) []byte {
	ms, loc := t.UnixMilli(), t.Location()
	if s := lastStamp.Load(); s != nil && s.ms == ms && s.loc == loc {
		return append(b, s.b...)
	}
	n := len(b)
	b = appendRFC3339Millis(b, t)
	lastStamp.Store(&stamp{ms: ms, loc: loc, b: append([]byte(nil), b[n:]...)})
	return b
}

// appendRFC3339Millis writes t as slog.TextHandler does: RFC 3339 with
// exactly three digits of milliseconds.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	// RFC3339Nano trims trailing zeros: a tenth of a millisecond more
	// keeps four digits, and the fourth is dropped.
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}
