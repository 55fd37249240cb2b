package proxy

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"keyhole/internal/h1"
	"keyhole/internal/logline"
	"keyhole/internal/wsrelay"
)

// visit is one visitor request as the access log and the metrics see it:
// the ResponseWriter the handlers write to, recording the status and the
// bytes each way. Flush, Hijack and Unwrap reach the connection's own
// writer, so http.ResponseController and WebSocket upgrades work through
// it.
type visit struct {
	http.ResponseWriter
	start  time.Time
	status int          // the final status written, 101 for an upgrade; 0 before any
	out    int64        // body bytes written
	in     atomic.Int64 // body bytes read, by the request body's own goroutine too
	body   countedBody
	conn   *countedConn // the hijacked connection of a WebSocket
	route  uint8        // routeNone, routeLocal or routeCross
	reason error        // why the request failed, if it did
	cut    bool         // the failure came after the response head
}

func (v *visit) WriteHeader(code int) {
	if v.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		v.status = code
	}
	v.ResponseWriter.WriteHeader(code)
}

func (v *visit) Write(p []byte) (int, error) {
	if v.status == 0 {
		v.status = http.StatusOK
	}
	n, err := v.ResponseWriter.Write(p)
	v.out += int64(n)
	if err != nil && v.reason == nil {
		v.reason, v.cut = err, true
	}
	return n, err
}

// FlushError lets http.ResponseController flush through the visit.
func (v *visit) FlushError() error { return http.NewResponseController(v.ResponseWriter).Flush() }

func (v *visit) Flush() { v.FlushError() }

func (v *visit) Unwrap() http.ResponseWriter { return v.ResponseWriter }

// Hijack hands over the connection, counted, for a WebSocket.
func (v *visit) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(v.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c = h1.Unwrap(c)
	v.status = http.StatusSwitchingProtocols
	v.conn = &countedConn{Conn: wsrelay.NewConn(c, false)}
	return v.conn, rw, nil
}

// countedBody counts the bytes of a request body as they are read.
type countedBody struct {
	body interface {
		Read([]byte) (int, error)
		Close() error
	}
	n *atomic.Int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countedBody) Close() error { return b.body.Close() }

// countedConn counts the bytes a hijacked connection reads; its writes,
// which it counts too, are a wsrelay.Conn's.
type countedConn struct {
	*wsrelay.Conn
	in atomic.Int64
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

// visitOf returns the visit w records, if it is one.
func visitOf(w http.ResponseWriter) *visit {
	v, _ := w.(*visit)
	return v
}

// noteFailure records why a request failed, for its access-log line. The
// first reason given stands.
func noteFailure(w http.ResponseWriter, err error) {
	if v := visitOf(w); v != nil && v.reason == nil {
		v.reason, v.cut = err, v.status != 0
	}
}

// noteUpstream records where a request went: a link here or another node.
func noteUpstream(w http.ResponseWriter, up upstream) {
	if v := visitOf(w); v != nil {
		v.route = routeLocal
		if _, ok := up.(*clientLink); !ok {
			v.route = routeCross
		}
	}
}

// startVisit wraps w and r's body for one visitor request.
func (s *Server) startVisit(w http.ResponseWriter, r *http.Request) *visit {
	v := &visit{ResponseWriter: w, start: time.Now()}
	if r.Body != nil && r.Body != http.NoBody {
		v.body = countedBody{body: r.Body, n: &v.in}
		r.Body = &v.body
	}
	return v
}

// statusCanceled is what the access log says of a request its visitor
// left before the answer was whole (nginx's 499).
const statusCanceled = 499

// endVisit writes the request's one access-log line and its metrics.
func (s *Server) endVisit(v *visit, r *http.Request, host string) {
	d := time.Since(v.start)
	in, out := v.in.Load(), v.out
	if v.conn != nil {
		in, out = v.conn.in.Load(), v.conn.Written()
	}
	s.stats.VisitorBytesIn.Add(in)
	s.stats.VisitorBytesOut.Add(out)
	status, class := v.status, classOf(v.status)
	if v.reason != nil && visitorLeft(r, v) {
		status, class = statusCanceled, classError
	} else if v.cut {
		class = classError
	}
	s.metrics.observe(v.route, class, d)
	if !s.access.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := [...]slog.Attr{
		slog.String("host", host),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", out),
		slog.Duration("duration", d),
		slog.String("visitor", s.sourceText(r)),
		slog.Bool("cross_node", v.route == routeCross),
		{},
	}
	n := len(attrs) - 1
	if v.reason != nil {
		attrs[n] = slog.String("reason", v.reason.Error())
		n++
	}
	logline.Log(s.access, slog.LevelInfo, "request", attrs[:n]...)
}

// visitorLeft reports whether a request failed because its visitor went
// away: canceled before the answer, or gone while it was written.
func visitorLeft(r *http.Request, v *visit) bool {
	return errors.Is(v.reason, context.Canceled) || v.cut && r.Context().Err() != nil
}
