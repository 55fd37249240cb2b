package logline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

// tricky strings for keys, values and messages: what needs quoting by
// slog.TextHandler's rule, and what only looks as if it might.
var tricky = []string{
	"", "plain", "with space", "a=b", `say "hi"`, `back\slash`, "tab\there", "line\nbreak",
	"del\x7f", "bell\x07", "café", "nbsp\u00a0x", "zero\u200bwidth", "bad\xffutf8", "emoji 🚀",
	"/path?q=1&r=2", "-", "1.5", "\\",
}

type valuer struct{ s string }

func (v valuer) LogValue() slog.Value { return slog.StringValue(v.s) }

// sameLine logs r through slog.TextHandler and through textHandler, both
// made by with, and fails when the bytes differ.
func sameLine(t *testing.T, with func(slog.Handler) slog.Handler, level slog.Level, r slog.Record) {
	t.Helper()
	var want, got bytes.Buffer
	opts := &slog.HandlerOptions{Level: level}
	std := with(slog.NewTextHandler(&want, opts))
	ours := with(NewTextHandler(&got, opts))
	ctx := context.Background()
	if std.Enabled(ctx, r.Level) != ours.Enabled(ctx, r.Level) {
		t.Fatalf("Enabled(%v) differs", r.Level)
	}
	if err := std.Handle(ctx, r.Clone()); err != nil {
		t.Fatal(err)
	}
	if err := ours.Handle(ctx, r.Clone()); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("textHandler wrote\n%q\nslog.TextHandler wrote\n%q", got.String(), want.String())
	}
}

func none(h slog.Handler) slog.Handler { return h }

// TestTextHandlerMatchesSlog: every line is byte for byte what
// slog.TextHandler writes, on the fast path and on the way round it.
func TestTextHandlerMatchesSlog(t *testing.T) {
	at := time.Date(2026, 12, 1, 20, 9, 47, 120_000_000, time.FixedZone("X", -5*3600))
	record := func(msg string, attrs ...slog.Attr) slog.Record {
		r := slog.NewRecord(at, slog.LevelInfo, msg, 0)
		r.AddAttrs(attrs...)
		return r
	}
	for _, s := range tricky {
		sameLine(t, none, slog.LevelInfo, record(s, slog.String(s, s), slog.String("k", s)))
	}
	values := []slog.Attr{
		slog.Int("int", -42), slog.Int64("big", math.MaxInt64), slog.Uint64("u", math.MaxUint64),
		slog.Float64("f", 0.1), slog.Float64("inf", math.Inf(-1)), slog.Float64("nan", math.NaN()), slog.Float64("e", 1e21),
		slog.Bool("yes", true), slog.Bool("no", false),
		slog.Duration("d", 1234567*time.Nanosecond), slog.Duration("zero", 0), slog.Duration("neg", -time.Minute),
		slog.String("empty", ""), {},
	}
	sameLine(t, none, slog.LevelInfo, record("request", values...))
	// What the standard handler formats: each alone, and among the others.
	slow := []slog.Attr{
		slog.Any("err", errors.New("dial tcp: refused")), slog.Time("at", at), slog.Any("v", valuer{"x y"}),
		slog.Group("g", slog.Int("a", 1)), slog.Any("bytes", []byte("hi")), slog.Any("nil", nil),
		slog.Int("", 3), slog.Any("list", []int{1, 2}),
	}
	for _, a := range slow {
		sameLine(t, none, slog.LevelInfo, record("m", slog.String("before", "x"), a, slog.Int("after", 1)))
	}
	// WithAttrs, fast and slow, and WithGroup.
	sameLine(t, func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.String("node", "a b")}) },
		slog.LevelInfo, record("request", values...))
	sameLine(t, func(h slog.Handler) slog.Handler {
		return h.WithAttrs([]slog.Attr{slog.String("node", "a")}).WithAttrs([]slog.Attr{slog.Any("err", errors.New("e"))})
	}, slog.LevelInfo, record("request", values...))
	sameLine(t, func(h slog.Handler) slog.Handler { return h.WithAttrs(nil).WithGroup("grp").WithAttrs(values[:2]) },
		slog.LevelInfo, record("request", values...))
	// Levels, and a record with no time.
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelDebug - 1, slog.LevelWarn, slog.LevelError + 2, slog.LevelInfo + 1} {
		r := record("lvl")
		r.Level = l
		sameLine(t, none, slog.LevelDebug-4, r)
		sameLine(t, none, slog.LevelWarn, r)
	}
	sameLine(t, none, slog.LevelInfo, slog.NewRecord(time.Time{}, slog.LevelInfo, "no time", 0))
	// Times at the edges of a millisecond.
	for _, ns := range []int{0, 999_999, 1_000_000, 999_999_999} {
		sameLine(t, none, slog.LevelInfo, slog.NewRecord(at.Add(time.Duration(ns)), slog.LevelInfo, "t", 0))
	}
	// Many attributes, past the record's inline ones.
	many := record("many")
	for i := range 40 {
		many.AddAttrs(slog.Int(strings.Repeat("k", i%5+1), i))
	}
	sameLine(t, none, slog.LevelInfo, many)
}

// FuzzTextHandler: any key, value and message is written as
// slog.TextHandler writes it.
func FuzzTextHandler(f *testing.F) {
	for _, s := range tricky {
		f.Add(s, s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, key, value string, n int64) {
		r := slog.NewRecord(time.Unix(0, n), slog.LevelInfo, value, 0)
		r.AddAttrs(slog.String(key, value), slog.Int64(key, n), slog.Duration(value, time.Duration(n)))
		sameLine(t, func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.String(value, key)}) }, slog.LevelInfo, r)
	})
}

// TestTextHandlerConcurrent: lines from many goroutines, fast and slow,
// arrive whole.
func TestTextHandlerConcurrent(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(NewTextHandler(&out, &slog.HandlerOptions{}))
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				if i%2 == 0 {
					log.Info("fast", "g", g, "i", i)
				} else {
					log.Info("slow", "g", g, "err", errors.New("e"))
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "time=") || strings.Count(l, "time=") != 1 {
			t.Fatalf("line not whole: %q", l)
		}
	}
}

// TestLog: Log writes the line LogAttrs writes, through the text handler
// (fast or not, with or without WithAttrs) and through any other handler.
func TestLog(t *testing.T) {
	untimed := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if i := strings.Index(l, " level="); i >= 0 {
				l = l[i:]
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	lines := [][]slog.Attr{
		{slog.String("host", "a.example"), slog.Int("status", 200), slog.Duration("duration", time.Millisecond), slog.Bool("cross_node", false)},
		{slog.String("method", "GET"), slog.Any("err", errors.New("refused")), slog.Int("n", 1)},
		nil,
	}
	for _, attrs := range lines {
		var want, got, json bytes.Buffer
		std := slog.New(slog.NewTextHandler(&want, nil)).With("node", "n 1")
		ours := slog.New(NewTextHandler(&got, &slog.HandlerOptions{})).With("node", "n 1")
		std.LogAttrs(context.Background(), slog.LevelWarn, "request", attrs...)
		Log(ours, slog.LevelWarn, "request", attrs...)
		Log(ours, slog.LevelDebug, "not shown", attrs...)
		if untimed(got.String()) != untimed(want.String()) {
			t.Errorf("Log wrote\n%q\nLogAttrs wrote\n%q", got.String(), want.String())
		}
		if !strings.HasPrefix(got.String(), "time=") {
			t.Errorf("no time: %q", got.String())
		}
		Log(slog.New(slog.NewJSONHandler(&json, nil)), slog.LevelInfo, "request", attrs...)
		if !strings.HasPrefix(json.String(), `{"time":`) || !strings.Contains(json.String(), `"msg":"request"`) {
			t.Errorf("through another handler: %q", json.String())
		}
	}
}

// BenchmarkRequestLine: one access-log line, through slog.TextHandler
// and through Log with the text handler.
func BenchmarkRequestLine(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("host", "sd5mv7vjwfkwngcub5ymael2elvdppk46pwtyryjhqlqokbljoeq.localhost"),
		slog.String("method", "GET"), slog.String("path", "/api/items"), slog.Int("status", 200),
		slog.Int64("bytes_in", 0), slog.Int64("bytes_out", 1024), slog.Duration("duration", 1234567*time.Nanosecond),
		slog.String("visitor", "127.0.0.1"), slog.Bool("cross_node", false),
	}
	b.Run("slog", func(b *testing.B) {
		l := slog.New(slog.NewTextHandler(io.Discard, nil)).With("node", "4NURQ3LUW7KN")
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
		}
	})
	b.Run("logline", func(b *testing.B) {
		l := slog.New(NewTextHandler(io.Discard, &slog.HandlerOptions{})).With("node", "4NURQ3LUW7KN")
		b.ReportAllocs()
		for b.Loop() {
			Log(l, slog.LevelInfo, "request", attrs...)
		}
	})
}

// TestEveryByte: each byte value, alone, inside ASCII text and after a
// rune beyond ASCII, is quoted (or not) as slog.TextHandler quotes it.
func TestEveryByte(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for c := 0; c < 256; c++ {
		b := string([]byte{byte(c)})
		vs := []string{b, "ab" + b + "cd", "é" + b, "path/" + b}
		for _, at := range []int{0, 7, 8, 15, 16} { // in and beside the words looked at whole
			v := []byte("/seventeen-bytes/")
			v[at] = byte(c)
			vs = append(vs, string(v))
		}
		for _, v := range vs {
			r := slog.NewRecord(at, slog.LevelInfo, "m", 0)
			r.AddAttrs(slog.String("k", v))
			sameLine(t, none, slog.LevelInfo, r)
		}
	}
}

// TestStamp: lines in the same millisecond, or in another location or
// millisecond, each get their own time's text.
func TestStamp(t *testing.T) {
	base := time.Date(2026, 12, 3, 9, 30, 0, 123_400_000, time.UTC)
	for _, at := range []time.Time{
		base, base.Add(500 * time.Microsecond), base.Add(time.Millisecond), base.In(time.FixedZone("X", 3600)),
		base.Add(-time.Hour * 24 * 365 * 60), base, base.Add(999 * time.Microsecond),
	} {
		want := string(appendRFC3339Millis(nil, at))
		if got := string(appendStamp(nil, at)); got != want {
			t.Errorf("%v: got %s, want %s", at, got, want)
		}
	}
}
